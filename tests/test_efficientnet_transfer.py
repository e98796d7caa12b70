"""configs/efficientnet_transfer.py: on-device resize, a frozen EfficientNet
backbone under a trained head, init_from a converted bare backbone."""
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.models.efficientnet import EfficientNet
from ssl_jax.tasks import classification
from ssl_jax.tools import convert_keras
from ssl_jax.train import checkpoints
from ssl_jax.train import loop
from ssl_jax.train import pretrained

import helpers


SMALL = {"depth_coefficient": 0.25, "width_coefficient": 0.25}


def _config(arg="quick", **overrides):
  """The quick config on 32 -> 64 images, one step per epoch."""
  config = helpers.load_config("efficientnet_transfer", arg)
  config.input.batch_size = 8
  config.input.max_test_examples = 16
  config.input.eval_batch_size = 16
  config.steps_per_epoch = 1
  config.log_every_steps = 1
  config.update_from_flattened_dict(overrides)
  return config


def _leaves(tree):
  return {checkpoints.path_str(p): x
          for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
  """(n_out, n_in) bilinear weights: half-pixel centres, edges repeated."""
  src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
  lo = np.floor(src).astype(int)
  hi = np.minimum(lo + 1, n_in - 1)
  m = np.zeros((n_out, n_in))
  np.add.at(m, (np.arange(n_out), lo), 1 - (src - lo))
  np.add.at(m, (np.arange(n_out), hi), src - lo)
  return m


def test_image_inputs_resize_standardised_images_bilinearly():
  rng = np.random.default_rng(0)
  batch = {"image": rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)}
  mean, std = np.array([0.5, 0.4, 0.3]), np.array([0.2, 0.25, 0.3])
  inputs = lambda train, key=None: classification.image_inputs(
      batch, key, train, mean=mean, std=std, crop_padding=4, flip=True,
      image_size=64)

  x = inputs(False)
  assert x.shape == (8, 64, 64, 3) and x.dtype == jnp.float32
  standardised = (batch["image"] / 255.0 - mean) / std
  m = _bilinear_matrix(32, 64)
  np.testing.assert_allclose(
      x, np.einsum("ih,jw,bhwc->bijc", m, m, standardised), atol=1e-5)
  # Training: augmented at the data's size, then resized.
  key = jax.random.key(3)
  augmented = classification.image_inputs(
      batch, key, True, mean=mean, std=std, crop_padding=4, flip=True,
      image_size=0)
  np.testing.assert_allclose(
      inputs(True, key), jax.image.resize(augmented, (8, 64, 64, 3),
                                          "bilinear"), atol=1e-6)


def test_imagenet_stats_are_the_converted_weights_preprocessing():
  config = _config(**{"input.image_size": 0})
  task = classification.make(config, np.zeros(3), np.ones(3))
  images = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), np.uint8)
  np.testing.assert_allclose(task.inputs({"image": images}, None, False),
                             convert_keras.keras_preprocess(images),
                             rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="needs RGB images"):
    classification.make(config, np.zeros(1), np.ones(1))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  """A bare EfficientNet checkpoint, as `convert_keras --no_top` writes.

  EfficientNet(include_top=False)'s variables, with random values rather
  than an initialisation (which would cost a compile), so a restore cannot
  pass by coincidence. B0 at a quarter of its depth and width (one block
  per stage, as B0's code paths): its step compiles in a third of B0's time.
  """
  shapes = jax.eval_shape(lambda: EfficientNet(
      variant="b0", include_top=False, **SMALL).init(
          jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
  rng = np.random.default_rng(2)
  draw = lambda p, s: (rng.uniform(0.5, 1.5, s.shape) if p[-1].key == "var"
                       else rng.normal(0, 0.05, s.shape)).astype(s.dtype)
  variables = jax.tree_util.tree_map_with_path(draw, shapes)
  directory = tmp_path_factory.mktemp("converted") / "b0"
  checkpoints.write(directory, variables)
  return directory, variables


@pytest.fixture(scope="module")
def run(converted, tmp_path_factory):
  """Two steps (checkpoints 1 and 2) of the quick config from `converted`."""
  workdir = tmp_path_factory.mktemp("transfer")
  config = _config(init_from=str(converted[0]), num_epochs=2)
  config.model.backbone_config.update(SMALL)
  loop.train_and_evaluate(config, workdir)
  return workdir


def test_init_from_converted_bare_backbone(converted, run):
  directory, saved = converted
  state = helpers.read_checkpoint(run, 1)["state"]
  assert sorted(state["params"]) == ["backbone", "class_head"]
  jax.tree.map(np.testing.assert_array_equal, state["params"]["backbone"],
               saved["params"])
  # BatchNorm statistics move in a training step: the transplant itself,
  # onto zeros of the run's variables.
  zeros = jax.tree.map(jnp.zeros_like, {"params": state["params"],
                                        "batch_stats": state["batch_stats"]})
  restored = pretrained.transplant(
      zeros, pretrained.load_variables(str(directory)), str(directory))
  for collection in ("params", "batch_stats"):
    jax.tree.map(np.testing.assert_array_equal,
                 restored[collection]["backbone"], saved[collection])
  assert not any(np.any(x) for x in
                 jax.tree.leaves(restored["params"]["class_head"]))


def test_quick_run_trains_the_head_only(converted, run):
  first, last = (helpers.read_checkpoint(run, step)["state"]["params"]
                 for step in (1, 2))
  jax.tree.map(np.testing.assert_array_equal, last["backbone"],
               converted[1]["params"])
  # Step 2 ran at half the peak learning rate (cosine over 2 steps).
  before, after = _leaves(first["class_head"]), _leaves(last["class_head"])
  for k in before:
    assert not np.array_equal(before[k], after[k]), k
  records = [json.loads(line) for line in
             (run / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [1, 2]
  assert all(np.isfinite(r["test_loss"]) for r in records)
  assert (run / "test_classification_report.txt").exists()
