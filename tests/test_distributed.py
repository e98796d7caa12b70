"""Two local processes with jax.distributed equal one process (loopback)."""
import time

import jax
import numpy as np
import pytest

import helpers

OVERRIDES = {**helpers.TINY, "num_epochs": 1, "steps_per_epoch": 2,
             "model.dropout_rate": 0.0}


def _params(workdir):
  return helpers.read_checkpoint(workdir, step=2)["state"]["params"]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
  """The reference: one process with two devices, the device path."""
  workdir = tmp_path_factory.mktemp("single")
  result = helpers.run_main(workdir, OVERRIDES, env=helpers.cpu_devices(2))
  assert result.returncode == 0, result.stderr[-3000:]
  return _params(workdir)


@pytest.mark.parametrize("pipeline", ["device", "stream"])
def test_two_processes_equal_one_process(tmp_path, pipeline, single):
  """With 'stream', each process reads only its own half of every batch."""
  errs = helpers.finish_processes(helpers.start_processes(
      tmp_path / "multi", {**OVERRIDES, "input.pipeline": pipeline}))
  if pipeline == "stream":  # 16 images a step, 8 per process.
    # From the files: no process holds the images in memory.
    for i, rows in enumerate(("0-7", "8-15")):
      assert (f"process {i} reads rows {rows} of each batch of 16, images "
              f"from " in errs[i]) and "cifar-10-batches-bin" in errs[i]
  multi = _params(tmp_path / "multi")
  for a, b in zip(jax.tree.leaves(multi), jax.tree.leaves(single)):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
  assert not np.allclose(multi["conv1"]["kernel"], 0)


def _start(workdir, overrides):
  return helpers.start_processes(workdir, overrides,
                                 flags=["--lost_process_timeout=10"])


def test_a_lost_process_stops_the_other_and_both_resume(tmp_path):
  """kill -9 of process 1 mid-run: process 0 stops with one line naming it
  and the last checkpoint, status 75; both rerun, they end as a run that
  was never interrupted."""
  overrides = {**OVERRIDES, "num_epochs": 2, "steps_per_epoch": 6,
               "checkpoint_every_steps": 2}
  helpers.finish_processes(_start(tmp_path / "whole", overrides))
  procs = _start(tmp_path / "cut", overrides)
  ckpts = tmp_path / "cut" / "checkpoints"
  while procs[1].poll() is None:
    if ckpts.exists() and any(p.name.isdigit() for p in ckpts.iterdir()):
      procs[1].kill()
      break
    time.sleep(0.02)
  err = procs[0].communicate()[1]
  procs[1].communicate()
  assert procs[0].returncode == 75, err[-3000:]
  lost = [l for l in err.splitlines() if "Lost process 1" in l]
  assert len(lost) == 1 and "The last checkpoint is step" in lost[0], err
  saved = int(lost[0].split("The last checkpoint is step ")[1].split()[0])
  assert saved < 12, "the run ended before the kill"
  helpers.finish_processes(_start(tmp_path / "cut", overrides))
  whole = helpers.read_checkpoint(tmp_path / "whole", step=12)["state"]
  cut = helpers.read_checkpoint(tmp_path / "cut", step=12)["state"]
  jax.tree.map(np.testing.assert_array_equal, whole, cut)
