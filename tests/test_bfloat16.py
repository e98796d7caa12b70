"""model.dtype='bfloat16': bfloat16 compute, float32 state, close to float32.

A tiny core CNN, SGD with momentum, 5 jitted steps from one init. Each
bfloat16 step is taken from the float32 run's state and compared with the
float32 step (tolerances and measured errors below: bfloat16 keeps 8
significant bits, ~0.4% per rounding, and gradients that mostly cancel, as
BatchNorm makes them, show it most); the bfloat16 run on its own must then
follow the float32 one. A bias gradient summed in bfloat16 was 113% off,
hence `layers._add_bias`.
"""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssl_jax import config_check
from ssl_jax.models import get_model
from ssl_jax.models import layers
from ssl_jax.models.heads import HeadSpec
from ssl_jax.tasks import classification
from ssl_jax.tasks import pretext_mix
from ssl_jax.train import step as step_lib

import helpers

MEAN, STD = np.full(3, 0.5, np.float32), np.full(3, 0.25, np.float32)
TINY = {"features": (8, 16, 16), "dense": 32, "dropout_rate": 0.0}
LEARNING_RATE = 0.01
STEP_RTOL = 0.01  # Loss of one step from the same state (measured: 0.2%).
STATS_RTOL = 0.02  # BatchNorm statistics after it (measured: 0.7%).
GRAD_RTOL = 0.5  # Each parameter's gradient, relative L2 (measured: 3-34%),
GRADS_RTOL = 0.2  # and all of them together (measured: 3-13%).
RUN_RTOL = 0.1  # Loss of 5 steps run apart (measured: 6.5%).


def _data(batch=16):
  rng = np.random.default_rng(0)
  return {"image": rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8),
          "label": rng.integers(0, 10, (batch,)).astype(np.int32)}


def _dtypes(tree) -> set[str]:
  return {str(a.dtype) for a in jax.tree.leaves(tree)
          if hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating)}


def _runs(steps: int = 5):
  """Jitted train steps of SGD with momentum from one init, in float32 and
  in bfloat16, and a bfloat16 step from every float32 state.

  Returns the task, the data, the states and metrics of each float32 step,
  of each bfloat16 step from the float32 state before it, and of the
  bfloat16 run on its own.
  """
  config = helpers.load_config()
  config.input.augment.crop_padding = 0
  config.input.augment.flip = False
  task = classification.make(config, MEAN, STD)
  data = _data()
  model = lambda dtype: get_model("core_cnn", num_classes=10, dtype=dtype,
                                  **TINY)
  tx = optax.sgd(LEARNING_RATE, momentum=0.9)
  sample = task.inputs(jax.tree.map(lambda a: a[:1], data), None, False)
  state32 = jax.jit(lambda r, x: step_lib.create_train_state(
      r, model("float32"), tx, x))(jax.random.key(1), sample)
  # The same state (float32 parameters, momentum, statistics), bfloat16
  # compute: only apply_fn differs.
  apply16 = model("bfloat16").apply  # One object: no retrace per step.
  bf16 = lambda s: s.replace(apply_fn=apply16)
  state16 = bf16(state32)
  step = jax.jit(functools.partial(step_lib.train_step, task=task))
  rng = jax.random.key(0)
  f32, one_step, alone = [(state32, None)], [], [(state16, None)]
  for _ in range(steps):
    one_step.append(step(bf16(f32[-1][0]), data, rng))
    f32.append(step(f32[-1][0], data, rng))
    alone.append(step(alone[-1][0], data, rng))
  return task, data, f32, one_step, alone


def _loss(metrics) -> float:
  return float(metrics["loss"][0] / metrics["loss"][1])


def test_bfloat16_steps_track_float32_with_float32_state():
  task, data, f32, one_step, alone = _runs()
  got = alone[-1][0]
  # Parameters, optimizer state and BatchNorm statistics stay float32.
  assert _dtypes(got.params) == {"float32"}
  assert _dtypes(got.opt_state) == {"float32"}
  assert _dtypes(got.batch_stats) == {"float32"}
  # Each step from the same state: loss, gradient (the update's difference
  # is learning_rate * the gradients' difference) and statistics.
  for (before, _), (ref, ref_metrics), (new, metrics) in zip(
      f32, f32[1:], one_step):
    assert _loss(metrics) == pytest.approx(_loss(ref_metrics), rel=STEP_RTOL)
    moved = lambda s: jax.tree.map(lambda a, b: np.asarray(a - b), s.params,
                                   before.params)
    for path, g32, g16 in zip(
        *zip(*jax.tree_util.tree_leaves_with_path(moved(ref))),
        jax.tree.leaves(moved(new))):
      error = np.linalg.norm(g16 - g32) / np.linalg.norm(g32)
      assert error < GRAD_RTOL, (jax.tree_util.keystr(path), error)
    flat = lambda s: np.concatenate([np.ravel(a) for a in jax.tree.leaves(
        moved(s))])
    error = np.linalg.norm(flat(new) - flat(ref)) / np.linalg.norm(flat(ref))
    assert error < GRADS_RTOL, error
    for a, b in zip(jax.tree.leaves(new.batch_stats),
                    jax.tree.leaves(ref.batch_stats)):
      np.testing.assert_allclose(a, b, rtol=STATS_RTOL, atol=STATS_RTOL)
  # On its own, bfloat16 learns as float32 does.
  losses = [_loss(m) for _, m in alone[1:]]
  ref_losses = [_loss(m) for _, m in f32[1:]]
  np.testing.assert_allclose(losses, ref_losses, rtol=RUN_RTOL)
  assert losses[-1] < 0.6 * losses[0]

  # Activations are bfloat16, logits float32.
  x = task.inputs(data, None, False)
  variables = {"params": got.params, "batch_stats": got.batch_stats}
  (logits, inter), captured = jax.eval_shape(lambda v, x: got.apply_fn(
      v, x, train=False,
      capture_intermediates=lambda m, _: isinstance(m, layers.Dense)),
                                             variables, x)
  assert logits.dtype == jnp.float32
  assert {k: str(v.dtype) for k, v in inter.items()} == {
      "block1": "bfloat16", "block2": "bfloat16", "block3": "bfloat16",
      "pre_logits": "bfloat16"}
  # The dense layer and the head's matmul themselves run in bfloat16.
  assert captured["intermediates"]["dense"]["__call__"][0].dtype == jnp.bfloat16
  assert captured["intermediates"]["head"]["out"]["__call__"][0].dtype == (
      jnp.bfloat16)


def test_multihead_passes_dtype_to_backbone_and_heads():
  """The two-head model of the multitask configs: a train step's state and
  the layers' outputs, traced (jax.eval_shape) rather than compiled."""
  config = helpers.load_config("multitask", "quick")
  assert config.model.dtype == "float32"
  task, heads = pretext_mix.make(config, MEAN, STD, 10, 1)
  data = {**_data(8), "labeled": np.ones(8, np.float32)}
  model = get_model("multihead", {"heads": heads}, dtype="bfloat16",
                    backbone_config=TINY, head_dropout_rate=0.0)
  sample = task.inputs(task.expand(jax.tree.map(lambda a: a[:2], data), None,
                                   False), None, False)
  state = jax.eval_shape(lambda: step_lib.create_train_state(
      jax.random.key(1), model, optax.adam(1e-3), sample))
  state, metrics = jax.eval_shape(functools.partial(
      step_lib.train_step, task=task), state, data, jax.random.key(0))
  assert metrics["loss"].dtype == jnp.float32
  assert _dtypes((state.params, state.opt_state, state.batch_stats)) == {
      "float32"}
  x = task.inputs(task.expand(data, None, False), None, False)
  (outputs, features), captured = jax.eval_shape(lambda s, x: s.apply_fn(
      {"params": s.params, "batch_stats": s.batch_stats}, x, train=False,
      capture_intermediates=lambda m, _: isinstance(m, layers.Dense)), state, x)
  assert {k: str(v.dtype) for k, v in outputs.items()} == {
      "class": "float32", "rotation": "float32"}
  assert {str(f.dtype) for f in features.values()} == {"bfloat16"}
  dense = captured["intermediates"]
  assert dense["backbone"]["dense"]["__call__"][0].dtype == jnp.bfloat16
  for head in ("class_head", "rotation_head"):
    assert dense[head]["out"]["__call__"][0].dtype == jnp.bfloat16


@pytest.mark.parametrize("name", ["resnet", "efficientnet"])
def test_other_backbones_compute_in_bfloat16(name):
  """Traced only (jax.eval_shape): dtypes need no compilation."""
  kwargs = {"resnet": {"stem_features": 8, "features": (8, 8, 8)},
            "efficientnet": {"width_coefficient": 0.1,
                             "depth_coefficient": 0.1}}[name]
  model = get_model(name, num_classes=10, dtype="bfloat16", **kwargs)
  x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
  variables = jax.eval_shape(functools.partial(model.init, train=False),
                             jax.random.key(0), x)
  (logits, inter), updates = jax.eval_shape(functools.partial(
      model.apply, train=True, mutable=["batch_stats"],
      rngs={"dropout": jax.random.key(1)}), variables, x)
  assert _dtypes(variables) == _dtypes(updates) == {"float32"}
  assert logits.dtype == jnp.float32
  assert {str(v.dtype) for v in inter.values()} == {"bfloat16"}


def test_dtype_is_checked_and_backbone_config_cannot_disagree():
  config = helpers.load_config()
  config.model.dtype = "float16"
  assert config_check.problems(config) == [
      "model.dtype='float16': must be one of float32, bfloat16."]
  model = get_model("multihead", {"heads": {"class": HeadSpec(10)}},
                    dtype="bfloat16",
                    backbone_config={**TINY, "dtype": "float32"})
  with pytest.raises(ValueError, match="backbone_config.dtype='float32' "
                     "differs from model.dtype='bfloat16'"):
    model.init(jax.random.key(0), jnp.ones((1, 32, 32, 3)), train=False)


def test_dense_is_nn_dense_with_a_float32_bias_sum():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 5)), jnp.float32)
  ours, flax_dense = layers.Dense(4), nn.Dense(4)
  variables = ours.init(jax.random.key(0), x)
  # Same parameter names, shapes and initial values: checkpoints carry over.
  jax.tree.map(np.testing.assert_array_equal, variables,
               flax_dense.init(jax.random.key(0), x))
  np.testing.assert_array_equal(ours.apply(variables, x),
                                flax_dense.apply(variables, x))
  # 14,400 ones summed in bfloat16 stop at 8,192; the bias gradient is exact.
  bias_grad = jax.grad(lambda v: layers.Dense(4, dtype=jnp.bfloat16).apply(
      v, jnp.ones((14_400, 5))).astype(jnp.float32).sum())(variables)
  np.testing.assert_array_equal(bias_grad["params"]["bias"], 14_400.0)
