"""Fault injection: divergence, refused reruns, a busy workdir, bad files and
bad flags each stop the run cleanly and leave the saved state as it was."""
import os
import pathlib
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from ssl_jax.data import cifar10
from ssl_jax.data import fashion_mnist
from ssl_jax.train import checkpoints
from ssl_jax.train import loop
from ssl_jax.train import workdir as workdir_lib

import helpers

CONSTANT = {"optimizer.schedule": "constant"}  # Epoch 1 is the same in any run.
CIFAR_BIN = helpers.CIFAR_DIR / "cifar-10-batches-bin"
needs_cifar = pytest.mark.skipif(not CIFAR_BIN.is_dir(),
                                 reason="no CIFAR-10 files at hand")


def _files(workdir: pathlib.Path) -> dict[str, bytes]:
  return {str(p.relative_to(workdir)): p.read_bytes()
          for p in sorted(workdir.rglob("*")) if p.is_file()}


def test_divergence_with_finite_loss_saves_nothing_and_resumes(tmp_path):
  """lr=1e9 keeps the loss finite but overflows a BatchNorm variance: that
  state is never saved, and a sane rerun resumes as if it had not run."""
  reference = loop.train_and_evaluate(
      helpers.tiny_config(num_epochs=2, **CONSTANT), tmp_path / "reference")
  work = tmp_path / "work"
  loop.train_and_evaluate(helpers.tiny_config(num_epochs=1, **CONSTANT), work)
  saved = _files(work / "checkpoints")
  with pytest.raises(FloatingPointError,
                     match=r"Step 8: state/batch_stats/\S+ holds inf or NaN"
                     r"(.|\n)*last good checkpoint \(step 4\)"):
    loop.train_and_evaluate(helpers.tiny_config(
        num_epochs=2, **CONSTANT, **{"optimizer.learning_rate": 1e9}), work)
  assert _files(work / "checkpoints") == saved
  resumed = loop.train_and_evaluate(
      helpers.tiny_config(num_epochs=2, **CONSTANT), work)
  assert helpers.untimed(resumed) == helpers.untimed(reference)
  ours = helpers.read_checkpoint(work)["state"]["params"]
  theirs = helpers.read_checkpoint(tmp_path / "reference")["state"]["params"]
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
    np.testing.assert_array_equal(a, b)


def test_a_non_finite_tree_is_never_written(tmp_path):
  ckpts = checkpoints.Checkpoints(tmp_path / "checkpoints", max_to_keep=1)
  good = {"a": np.ones(3, np.float32), "b": {"c": np.zeros(2, np.float32),
                                             "n": np.arange(2)}}
  ckpts.save(1, good)
  ckpts.close()
  before = _files(tmp_path)
  for bad in (np.inf, np.nan):
    ckpts = checkpoints.Checkpoints(tmp_path / "checkpoints", max_to_keep=1)
    tree = {"a": good["a"], "b": {"c": np.array([0, bad], np.float32),
                                  "n": good["b"]["n"]}}
    with pytest.raises(FloatingPointError,
                       match=r"Step 2: b/c holds inf or NaN(.|\n)*step 1"):
      ckpts.save(2, tree)
    ckpts.close()
    assert _files(tmp_path) == before  # max_to_keep=1 deleted nothing.
  assert checkpoints.first_nonfinite(good) is None


def test_a_refused_rerun_changes_no_file(tmp_path):
  loop.train_and_evaluate(helpers.tiny_config(num_epochs=1), tmp_path)
  before = _files(tmp_path)
  assert "config.json" in before and "lock" in before
  refused = [({"model.dense": 64}, r"does not fit(.|\n)*dense/kernel"),
             ({"seed": 1}, r"split.npz was drawn with"),
             ({"input.labels_per_class": 3}, r"split.npz was drawn with"),
             ({"model.norm": "layer"}, r"does not fit"),
             ({"input.batch_size": -8}, r"input.batch_size=-8: must be an "
                                        r"integer > 0")]
  for change, message in refused:
    with pytest.raises(ValueError, match=message):
      loop.train_and_evaluate(helpers.tiny_config(num_epochs=2, **change),
                               tmp_path)
    assert _files(tmp_path) == before, change


def test_a_live_workdir_is_refused_and_a_dead_ones_lock_is_not(tmp_path):
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time; from ssl_jax.train import workdir; "
       "workdir.Lock(sys.argv[1]).accept(); print('held', flush=True); "
       "time.sleep(120)", str(tmp_path)],
      cwd=helpers.ROOT, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(workdir_lib.Busy, match=f"pid {holder.pid}"):
      loop.train_and_evaluate(helpers.tiny_config(), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lock"]
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  lock = workdir_lib.Lock(tmp_path)  # The kernel dropped the dead one's lock.
  # Named even before the holder writes its pid (Linux's /proc/locks).
  os.truncate(tmp_path / "lock", 0)
  waiting = subprocess.run(
      [sys.executable, "-c", "import sys; from ssl_jax.train import workdir; "
       "workdir.Lock(sys.argv[1])", str(tmp_path)], cwd=helpers.ROOT,
      capture_output=True, text=True)
  named = os.getpid() if os.path.exists("/proc/locks") else "unknown"
  assert f"in use by another run (pid {named}" in waiting.stderr
  lock.release()


def _cifar_copy(tmp_path, damage):
  """Links to the real files, with data_batch_2.bin replaced by `damage`'s."""
  tmp_path.mkdir(parents=True, exist_ok=True)
  for f in CIFAR_BIN.iterdir():
    (tmp_path / f.name).symlink_to(f)
  target = tmp_path / "data_batch_2.bin"
  raw = bytearray(target.read_bytes())
  target.unlink()
  target.write_bytes(damage(raw))
  return tmp_path


@needs_cifar
def test_a_short_or_altered_cifar_file_is_named(tmp_path):
  short = _cifar_copy(tmp_path / "short", lambda raw: raw[:5000 * 3073])
  with pytest.raises(ValueError, match=r"data_batch_2.bin: expected 10,000 "
                     r"records, found 5,000"):
    cifar10.read(short)
  flipped = lambda raw: raw[:100] + bytes([raw[100] ^ 1]) + raw[101:]
  altered = _cifar_copy(tmp_path / "altered", flipped)
  with pytest.raises(ValueError, match=r"data_batch_2.bin: md5 [0-9a-f]{32}, "
                     r"expected the published " + cifar10.MD5[
                         "data_batch_2.bin"]):
    cifar10.read(altered)
  assert len(cifar10.read(altered, check=False)[1]) == 50_000


def test_fashion_mnist_counts_are_checked(tmp_path):
  header = lambda shape: b"\0\0\x08" + bytes([len(shape)]) + b"".join(
      d.to_bytes(4, "big") for d in shape)
  for prefix, n in (("train", 6), ("t10k", 4)):
    (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(
        header((n, 28, 28)) + bytes(n * 784))
    (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(
        header((n,)) + bytes(n))
  with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: its IDX "
                     r"header says 6 images(.|\n)*official 60,000"):
    fashion_mnist.read(tmp_path)
  assert len(fashion_mnist.read(tmp_path, check=False)[0]) == 6


def _main(tmp_path, *flags, config="configs/supervised.py:quick"):
  workdir = tmp_path / "run"
  result = subprocess.run(
      [sys.executable, "-m", "ssl_jax.main", f"--config={config}",
       f"--workdir={workdir}", *flags], cwd=helpers.ROOT, capture_output=True,
      text=True)
  assert result.returncode == 1, result.stderr[-2000:]
  assert "Traceback" not in result.stderr, result.stderr[-2000:]
  return result.stderr.strip().splitlines()[-1], workdir


@pytest.mark.parametrize("flags, message", [
    (("--config.input.batch_size=-8",),
     "input.batch_size=-8: must be an integer > 0"),
    (("--config.model.featurez=1",),
     "Unknown config key 'featurez' in --config.model.featurez"),
    (("--config.num_epochs=abc",), "flag --config.num_epochs=abc: invalid"),
    (("--config=configs/nope.py",), "No such file or directory: "
                                    "'configs/nope.py'"),
])
def test_bad_flags_are_one_line_and_write_nothing(tmp_path, flags, message):
  line, workdir = _main(tmp_path, *flags)
  assert message in line
  assert not workdir.exists()


@needs_cifar
def test_main_names_a_short_data_file_in_one_line(tmp_path):
  short = _cifar_copy(tmp_path, lambda raw: raw[:5000 * 3073])
  line, _ = _main(tmp_path, f"--config.input.data_dir={short}",
                  "--config.input.source=files")
  assert "data_batch_2.bin: expected 10,000 records, found 5,000" in line


def test_config_values_are_checked_one_line_each():
  from ssl_jax import config_check  # pylint: disable=g-import-not-at-top
  for name, arg in (("supervised", ""), ("multitask", "pretext=rotation+"
                    "exemplar"), ("pretrain", "pretext=jigsaw"),
                    ("memnet", ""), ("finetune", ""), ("cnn", ""),
                    ("efficientnet_transfer", "")):
    assert config_check.problems(helpers.load_config(name, arg)) == [], name
  config = helpers.load_config("multitask", "pretext=rotation")
  config.input.batch_size = 0
  config.num_epochs = 0
  config.optimizer.learning_rate = float("inf")
  config.model.backbone_config.norm = "bach"
  config.model.backbone_config.dropout_rate = 1.0
  config.parallel = "pjit"
  config.input.labels_per_class = 0
  config.pretext.rotation.weight = -1.0
  assert sorted(config_check.problems(config)) == sorted([
      "input.batch_size=0: must be an integer > 0.",
      "num_epochs=0: must be an integer > 0.",
      "optimizer.learning_rate=inf: must be a finite number.",
      "Unknown norm 'bach' (model.backbone_config.norm); built in: batch, "
      "group, instance, layer, none, rms; or give the import path of a module"
      " of your own (e.g. my_lab.norms.mine, see ssl_jax/plugins.py).",
      "model.backbone_config.dropout_rate=1.0: must be in [0, 1).",
      "parallel='pjit': must be one of jit, pmap.",
      "input.labels_per_class=0: must be -1 (all) or > 0.",
      "pretext.rotation.weight=-1.0: must be a finite number >= 0."])
