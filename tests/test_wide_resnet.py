"""WRN-28-2 against the published architecture: parameters counted layer by
layer from the paper's description, feature shapes, and its use as a
backbone by name."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import models
from ssl_jax.train import loop

import helpers


def _published_count(depth: int, k: int, classes: int) -> int:
  """WRN-depth-k's parameters: stem 3x3 conv (no bias), per block two BN
  (scale, bias) + two 3x3 convs (no bias) + a 1x1 projection where the width
  changes, a final BN, the class layer with bias."""
  n = (depth - 4) // 6
  total, c_in = 3 * 16 * 9, 16
  for width in (16 * k, 32 * k, 64 * k):
    for j in range(n):
      c = c_in if j == 0 else width
      total += 2 * c + 9 * c * width + 2 * width + 9 * width * width
      if c != width:
        total += c * width
    c_in = width
  return total + 2 * c_in + c_in * classes + classes


def test_wrn_28_2_has_the_published_size_and_shapes():
  assert _published_count(28, 2, 10) == 1_467_610  # FixMatch's "1.47M".
  model = models.get_model("wide_resnet", {"num_classes": 10})
  x = jnp.zeros((2, 32, 32, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x,
                                                train=False))
  count = sum(np.prod(v.shape) for v in jax.tree.leaves(variables["params"]))
  assert count == _published_count(28, 2, 10)
  (logits, out) = jax.eval_shape(lambda: model.apply(
      model.init(jax.random.key(0), x, train=False), x, train=False))
  assert logits.shape == (2, 10) and logits.dtype == jnp.float32
  assert out["block1"].shape == (2, 32, 32, 32)
  assert out["block2"].shape == (2, 16, 16, 64)
  assert out["block3"].shape == (2, 8, 8, 128)
  assert out["pre_logits"].shape == (2, 128)
  # BatchNorm statistics: every norm of every block, and the final one.
  stats = jax.tree.leaves(variables["batch_stats"])
  assert len(stats) == 2 * (2 * 12 + 1)


@pytest.mark.parametrize("depth,k", [(16, 1), (28, 10)])
def test_other_depths_and_widths_count_as_published(depth, k):
  model = models.get_model("wide_resnet", {"num_classes": 100}, depth=depth,
                           widen_factor=k)
  variables = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
  count = sum(np.prod(v.shape) for v in jax.tree.leaves(variables["params"]))
  assert count == _published_count(depth, k, 100)


def test_a_bad_depth_is_named():
  model = models.get_model("wide_resnet", {"num_classes": 10}, depth=27)
  with pytest.raises(ValueError, match="depth must be 6n \\+ 4, got 27"):
    model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)


def test_it_trains_as_a_backbone_by_name(tmp_path):
  """A two-head run with the WRN backbone (narrowed) and its block pattern."""
  config = helpers.load_config("multitask", "quick,backbone=wide_resnet")
  config.model.backbone_config.update(depth=10, widen_factor=1)
  config.update(num_epochs=1, steps_per_epoch=2)
  config.knn.k = 0
  config.input.update(labels_per_class=5, max_test_examples=100,
                      eval_batch_size=100)
  record = loop.train_and_evaluate(config, tmp_path)
  assert record["step"] == 2 and np.isfinite(record["train_loss"])
  assert models.block_pattern("wide_resnet", 2) == "(conv0/|group[1-2]_)"


def test_fixmatch_schedule_and_optimizer_by_name():
  """cos(7 pi k / (16 K)) after warmup, from the formula; SGD with Nesterov
  momentum and L2 on the gradient as FixMatch's recipe."""
  from ssl_jax.train import optim  # pylint: disable=g-import-not-at-top
  config = helpers.load_config("supervised", "quick").optimizer
  config.update(name="momentum", learning_rate=0.03, weight_decay=5e-4,
                schedule="fixmatch_cosine", warmup_steps=10)
  schedule = optim.make_schedule(config, total_steps=110)
  for k in (0, 5, 10, 60, 110):
    want = (0.03 * k / 10 if k < 10
            else 0.03 * np.cos(7 * np.pi * (k - 10) / (16 * 100)))
    np.testing.assert_allclose(schedule(k), want, rtol=1e-6)
  tx = optim.make_optimizer(config, total_steps=110)
  params = {"w": jnp.ones(3)}
  grads = {"w": jnp.array([1.0, 0.0, -1.0])}
  state = tx.init(params)
  updates, state = tx.update(grads, state, params)
  g = np.array([1.0, 0.0, -1.0]) + 5e-4  # L2 on the gradient.
  # Step 0 of the warmup: learning rate 0; step 1: 0.003, Nesterov momentum.
  np.testing.assert_allclose(updates["w"], 0.0, atol=1e-12)
  updates, _ = tx.update(grads, state, params)
  velocity = 0.9 * g + g
  np.testing.assert_allclose(updates["w"], -0.003 * (g + 0.9 * velocity),
                             rtol=1e-5)
