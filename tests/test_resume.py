"""Interrupted runs (SIGKILL, SIGTERM) resume to the uninterrupted result."""
import json
import os
import signal
import subprocess
import sys
import time
import types

import jax
import numpy as np
import pytest

from ssl_jax.train import loop
from ssl_jax.train import reporting

import helpers

# 3 epochs of 4 steps, a save every 2 steps: kills land mid-epoch.
OVERRIDES = {**helpers.TINY, "checkpoint_every_steps": 2}
TOTAL_STEPS = 12


def _final(workdir):
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()
                 if p.name.isdigit())
  tree = helpers.read_checkpoint(workdir, steps[-1])
  records = [json.loads(l) for l in (workdir / "metrics.jsonl").open()]
  return steps[-1], tree["state"]["params"], records


# main with SIGINT raising KeyboardInterrupt, as Python sets it up in a
# terminal, whatever the test runner's own handling of SIGINT.
_DEFAULT_SIGINT = (
    "import runpy, signal, sys; "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'ssl_jax.main'; "
    "runpy.run_module('ssl_jax.main', run_name='__main__')")


def _interrupt(workdir, sig, extra):
  """Starts main (SIGINT at its default, as in a terminal), sends `sig` once a
  first checkpoint exists, returns its status and log."""
  args = helpers.main_command(workdir, {**OVERRIDES, **extra})[3:]
  proc = subprocess.Popen([sys.executable, "-c", _DEFAULT_SIGINT, *args],
                          cwd=helpers.ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
  ckpts = workdir / "checkpoints"
  while proc.poll() is None:
    if ckpts.exists() and any(p.name.isdigit() for p in ckpts.iterdir()):
      proc.send_signal(sig)
      break
    time.sleep(0.02)
  _, err = proc.communicate()
  return proc.returncode, err


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted run, shared by the tests below."""
  workdir = tmp_path_factory.mktemp("reference")
  last = loop.train_and_evaluate(helpers.tiny_config(checkpoint_every_steps=2),
                                  workdir)
  return last, _final(workdir)


def _resume_equals_reference(config, workdir, reference):
  """Resumes `config` in `workdir`: it ends bitwise as the reference."""
  resumed = loop.train_and_evaluate(config, workdir)
  ref_last, (_, ref_params, ref_records) = reference
  _, params, records = _final(workdir)
  assert helpers.untimed(resumed) == helpers.untimed(ref_last)
  assert ([helpers.untimed(r) for r in records] ==
          [helpers.untimed(r) for r in ref_records])
  for a, b in zip(jax.tree.leaves(ref_params), jax.tree.leaves(params)):
    np.testing.assert_array_equal(a, b)


def _check_same(tmp_path, sig, reference, extra=None):
  returncode, err = _interrupt(tmp_path, sig, extra or {})
  step, _, _ = _final(tmp_path)
  assert step < TOTAL_STEPS, "the run ended before it could be interrupted"
  resumed = loop.train_and_evaluate(
      helpers.tiny_config(checkpoint_every_steps=2, **(extra or {})), tmp_path)
  ref_last, (ref_step, ref_params, ref_records) = reference
  cut_step, cut_params, cut_records = _final(tmp_path)
  assert helpers.untimed(resumed) == helpers.untimed(ref_last)
  assert ref_step == cut_step == TOTAL_STEPS
  for a, b in zip(jax.tree.leaves(ref_params), jax.tree.leaves(cut_params)):
    np.testing.assert_array_equal(a, b)  # Bitwise.
  assert [r["epoch"] for r in cut_records] == [1, 2, 3]
  assert ([helpers.untimed(r) for r in cut_records] ==
          [helpers.untimed(r) for r in ref_records])
  return returncode, err


def test_sigkill_then_resume_equals_uninterrupted(tmp_path, reference):
  returncode, _ = _check_same(tmp_path, signal.SIGKILL, reference)
  assert returncode == -signal.SIGKILL


def test_streaming_sigkill_then_resume_equals_uninterrupted(tmp_path,
                                                           reference):
  """The streaming input path, killed mid-epoch and resumed, ends bitwise
  where the uninterrupted (device path) run did."""
  returncode, err = _check_same(tmp_path, signal.SIGKILL, reference,
                                {"input.pipeline": "stream"})
  assert returncode == -signal.SIGKILL
  assert "Input pipeline: stream." in err


def test_sigterm_saves_then_resume_equals_uninterrupted(tmp_path, reference):
  returncode, err = _check_same(tmp_path, signal.SIGTERM, reference)
  # 143 = 128 + SIGTERM, the status README's preemption section documents.
  assert returncode == 143 and "SIGTERM: stopped at step" in err


def test_ctrl_c_saves_then_resume_equals_uninterrupted(tmp_path, reference):
  """SIGINT (Ctrl-C) as SIGTERM: the step finishes and is saved; one line
  says where, and the status is 130 (128 + SIGINT)."""
  returncode, err = _check_same(tmp_path, signal.SIGINT, reference)
  assert returncode == 130, err[-2000:]
  lines = [l for l in err.splitlines() if "SIGINT" in l]
  assert len(lines) == 1 and "stopped at step" in lines[0]
  assert "rerun the same command to resume" in lines[0]
  assert "Traceback" not in err


def test_a_second_ctrl_c_stops_at_once_and_loses_nothing_saved(
    tmp_path, reference, monkeypatch):
  """Two SIGINTs inside step 6: the second stops the run at once; the epoch
  saved at step 4 is intact and the rerun ends where the reference did."""
  log = reporting.Progress.log

  def log_then_two_sigints(self, step, *args):
    log(self, step, *args)
    if step == 6:
      os.kill(os.getpid(), signal.SIGINT)
      os.kill(os.getpid(), signal.SIGINT)

  monkeypatch.setattr(reporting.Progress, "log", log_then_two_sigints)
  config = helpers.tiny_config(checkpoint_every_steps=2)
  with pytest.raises(KeyboardInterrupt):
    loop.train_and_evaluate(config, tmp_path)
  monkeypatch.undo()
  assert _final(tmp_path)[0] == 4
  _resume_equals_reference(config, tmp_path, reference)


@pytest.mark.parametrize("damage", ["cut_mid_line", "last_line_deleted",
                                    "garbled"])
def test_a_damaged_metrics_log_is_rebuilt_on_resume(tmp_path, reference,
                                                    damage, caplog):
  """metrics.jsonl after 2 of 3 epochs loses (part of) its last record: the
  resumed run's history has every epoch once, as the uninterrupted run's."""
  config = helpers.tiny_config(checkpoint_every_steps=2)
  loop.train_and_evaluate(helpers.tiny_config(checkpoint_every_steps=2,
                                              num_epochs=2), tmp_path)
  log = tmp_path / "metrics.jsonl"
  lines = log.read_text().splitlines(keepends=True)
  log.write_text({"cut_mid_line": lines[0] + lines[1][:40],
                  "last_line_deleted": lines[0],
                  "garbled": lines[0] + "{x\n" + lines[1]}[damage])
  loop.train_and_evaluate(config, tmp_path)
  _, _, records = _final(tmp_path)
  ref_records = reference[1][2]
  assert ([helpers.untimed(r) for r in records] ==
          [helpers.untimed(r) for r in ref_records])
  if damage != "garbled":
    assert "lacked the records of epoch(s) [2]" in caplog.text


def test_sigterm_in_an_epochs_last_step_loses_no_record(tmp_path, reference,
                                                       monkeypatch):
  """SIGTERM arriving while an epoch's last step runs (here: at its progress
  line, step 4 of 4): the epoch is still recorded and saved before the
  stop, so the resumed run equals the uninterrupted one."""
  log = reporting.Progress.log

  def log_then_sigterm(self, step, *args):
    log(self, step, *args)
    if step == 4:
      os.kill(os.getpid(), signal.SIGTERM)

  monkeypatch.setattr(reporting.Progress, "log", log_then_sigterm)
  config = helpers.tiny_config(checkpoint_every_steps=2)
  with pytest.raises(loop.Preempted, match="stopped at step 4 "):
    loop.train_and_evaluate(config, tmp_path)
  monkeypatch.undo()
  assert [json.loads(l)["step"] for l in (tmp_path / "metrics.jsonl").open()
          ] == [4]
  _resume_equals_reference(config, tmp_path, reference)


def test_resumed_run_counts_its_time_on(tmp_path, monkeypatch):
  """A resumed run adds its own time to that of the epochs it restored."""
  clock = iter(range(0, 10 ** 6, 1000))  # Each reading 1,000 s later.
  monkeypatch.setattr(loop, "time", types.SimpleNamespace(
      perf_counter=lambda: next(clock)))
  first = loop.train_and_evaluate(helpers.tiny_config(num_epochs=1), tmp_path)
  last = loop.train_and_evaluate(helpers.tiny_config(num_epochs=2), tmp_path)
  assert first["wall_time_s"] == 1000  # Start and first record.
  assert last["wall_time_s"] == 2000  # 1,000 s restored + 1,000 s more.


def test_bad_checkpoints_give_clear_errors_and_stay_untouched(tmp_path):
  loop.train_and_evaluate(helpers.tiny_config(num_epochs=1), tmp_path)
  saved = helpers.read_checkpoint(tmp_path)["state"]["params"]
  # A changed model: the error lists what differs.
  with pytest.raises(ValueError, match=r"does not fit(.|\n)*dense/kernel"):
    loop.train_and_evaluate(
        helpers.tiny_config(num_epochs=1, **{"model.dense": 64}), tmp_path)
  # A corrupt file: the error names the checkpoint; nothing is deleted.
  metadata = tmp_path / "checkpoints" / "4" / "default" / "_METADATA"
  good = metadata.read_bytes()
  metadata.write_bytes(b"\x00garbage")
  with pytest.raises(ValueError, match=r"checkpoints/4 is unreadable"):
    loop.train_and_evaluate(helpers.tiny_config(num_epochs=2), tmp_path)
  assert metadata.read_bytes() == b"\x00garbage"
  metadata.write_bytes(good)
  again = helpers.read_checkpoint(tmp_path)["state"]["params"]
  for a, b in zip(jax.tree.leaves(saved), jax.tree.leaves(again)):
    np.testing.assert_array_equal(a, b)


def test_loop_pieces_stop_and_resume_to_the_whole_run(tmp_path, reference):
  """build / restore / train_epoch / epoch_record / save, called by hand with
  a stop after epoch 1 and a fresh build, end where train_and_evaluate did."""
  config = helpers.tiny_config(checkpoint_every_steps=2)
  records, step = [], 0
  for epochs in ((1,), (2, 3)):  # Two "processes": a stop between them.
    run, state = loop.build(config, tmp_path)
    state, sums = loop.restore(run, state)
    assert int(state.step) == step
    dev_state = run.runner.to_device_layout(state)
    for _ in epochs:
      dev_state, sums, step, preempted = loop.train_epoch(
          run, dev_state, sums, step)
      assert not preempted
      records.append(loop.epoch_record(run, dev_state, sums, step))
      sums = run.zero_sums
      loop.save(run, step, dev_state, sums)
    run.ckpts.close()
  ref_last, (_, ref_params, ref_records) = reference
  assert records == [helpers.untimed(r) for r in ref_records]
  params = helpers.read_checkpoint(tmp_path)["state"]["params"]
  for a, b in zip(jax.tree.leaves(ref_params), jax.tree.leaves(params)):
    np.testing.assert_array_equal(a, b)
  assert records[-1] == helpers.untimed(ref_last)
