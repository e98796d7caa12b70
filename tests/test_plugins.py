"""Plug-ins named by import path: a pretext task, a backbone and a dataset that
live only under tests/lab_plugins (not importable as ssl_jax.*) work in every
process that reads the run: training, resume, predict, a self-training
teacher, and both processes of a jax.distributed run."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from ssl_jax import plugins
from ssl_jax.data import augment

import helpers
from lab_plugins import blobs
from lab_plugins import context

CONFIG = ("configs/multitask.py:quick,pretext=rotation+lab_plugins.context,"
          "backbone=lab_plugins.tiny_net")


def _overrides(data_dir, **more):
  return {"input.name": "lab_plugins.blobs", "input.data_dir": str(data_dir),
          "input.labels_per_class": 5, "input.batch_size": 8,
          "input.unlabeled_batch_size": 8, "input.eval_batch_size": 16,
          "input.max_test_examples": 0, "knn.k": 5, "num_epochs": 1,
          "steps_per_epoch": 2, "log_every_steps": 1,
          "pretext.context.patch_size": 0, **more}


def _env(devices=1):
  """A process with tests/ on PYTHONPATH, as a lab's package installed."""
  path = os.pathsep.join([str(helpers.ROOT / "tests"),
                          os.environ.get("PYTHONPATH", "")])
  return {**helpers.cpu_devices(devices), "PYTHONPATH": path}


def _run(args, devices=1):
  result = subprocess.run(args, cwd=helpers.ROOT, env=_env(devices),
                          capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def _main(workdir, overrides, devices=1):
  return _run(helpers.main_command(workdir, overrides, CONFIG), devices)


def _records(workdir):
  return [json.loads(l) for l in (workdir / "metrics.jsonl").read_text()
          .splitlines()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
  """A run of the three plug-ins: 2 steps, then resumed in a new process."""
  workdir = tmp_path_factory.mktemp("run")
  _main(workdir, _overrides(data_dir))
  resumed = _main(workdir, _overrides(data_dir, num_epochs=2))
  assert "Resumed from" in resumed.stderr
  return workdir


def test_context_patches_are_the_centre_and_a_neighbour():
  """Against NumPy slicing: patch 0 from cell 4, patch 1 from neighbour k."""
  cfg = context.get_config()
  cfg.update(jitter=2, patch_size=0)
  images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3),
                                             np.uint8)
  views = jax.device_get(context.transform(cfg, images, None, False))
  np.testing.assert_array_equal(views.target, np.arange(8) % 8)
  patches = views.images.reshape(8, 2, 8, 8, 3)
  cell, origin, offset = 10, 1, 1  # 32 // 3; (32 - 30) // 2; jitter // 2.
  for i in range(8):
    for slot, c in enumerate((4, context.NEIGHBOURS[i % 8])):
      r, col = divmod(int(c), 3)
      top, left = origin + cell * r + offset, origin + cell * col + offset
      np.testing.assert_array_equal(patches[i, slot],
                                    images[i, top:top + 8, left:left + 8])


def test_cut_patches_resizes_like_jax_image():
  images = np.arange(2 * 6 * 6 * 1, dtype=np.float32).reshape(2, 6, 6, 1)
  corners = np.array([[[0, 0], [2, 3]], [[1, 1], [3, 0]]])
  got = augment.cut_patches(images, corners, 3, resize_to=5)
  want = jax.image.resize(np.stack([images[0, 0:3, 0:3], images[0, 2:5, 3:6],
                                    images[1, 1:4, 1:4], images[1, 3:6, 0:3]]),
                          (4, 5, 5, 1), "bilinear")
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_names_resolve_by_import_path_or_fail_clearly():
  assert plugins.load("pretext", "lab_plugins.context") is context
  assert plugins.load("dataset", "lab_plugins.blobs") is blobs.DATASET
  assert plugins.load("model", "lab_plugins.tiny_net:TinyNet").width == 8
  with pytest.raises(ValueError, match="cannot import 'lab_plugins.nope'"):
    plugins.load("model", "lab_plugins.nope", "model.backbone")
  with pytest.raises(ValueError, match=r"lacks \['get_config', 'spec'"):
    plugins.load("pretext", "lab_plugins.blobs")
  with pytest.raises(ValueError, match="Unknown optimizer 'adamm'.*adam"):
    plugins.load("optimizer", "adamm", "optimizer.name")


def test_a_run_of_plugins_trains_and_resumes_in_new_processes(trained):
  records = _records(trained)
  assert [r["step"] for r in records] == [2, 4]
  for r in records:
    assert 0 <= r["test_context_accuracy"] <= 1
    assert np.isfinite(r["test_rotation_loss"])
  config = json.loads((trained / "config.json").read_text())
  assert config["pretext"]["context"]["name"] == "lab_plugins.context"
  params = helpers.read_checkpoint(trained)["state"]["params"]
  assert params["context_head"]["hidden0"]["kernel"].shape == (2 * 16, 64)
  assert set(params["backbone"]) == {"conv1", "norm1", "conv2", "norm2"}


def test_predict_reads_the_run_in_a_new_process(trained):
  out = _run([sys.executable, "-m", "ssl_jax.tools.predict",
              f"--workdir={trained}", "--test_index=1"]).stdout
  head = "test image 1 (label: top_right): "
  assert out.startswith(head)
  top, seen = out.strip().removeprefix(head).split("; ")
  assert seen.startswith("rotation ")  # The rotation head describes.
  names, probs = zip(*(t.split() for t in top.split(", ")))
  assert len(set(names)) == 3 and set(names) <= set(blobs.CLASSES)
  assert sorted(map(float, probs), reverse=True) == list(map(float, probs))


def test_the_run_serves_as_a_self_training_teacher(trained, data_dir,
                                                   tmp_path):
  _run(helpers.main_command(
      tmp_path, _overrides(data_dir, steps_per_epoch=1),
      f"{CONFIG},teacher={trained}"))
  stats = json.loads((tmp_path / "pseudo_labels.json").read_text())
  assert stats["pool"] == 96 - 20 and stats["teacher"] == str(trained)


def test_two_processes_run_the_plugins_as_one(tmp_path, data_dir):
  """jax.distributed on loopback: both processes resolve the plug-ins from
  the config alone, and train as one process with two devices does."""
  overrides = _overrides(data_dir, **{"model.head_dropout_rate": 0.0})
  _main(tmp_path / "single", overrides, devices=2)
  helpers.finish_processes(helpers.start_processes(
      tmp_path / "multi", overrides, CONFIG, _env()))
  helpers.assert_trees_close(
      helpers.read_checkpoint(tmp_path / "multi")["state"]["params"],
      helpers.read_checkpoint(tmp_path / "single")["state"]["params"])
