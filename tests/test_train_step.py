"""The jitted train/eval steps: learning, determinism, and device layouts."""
import functools

import jax
import numpy as np
import optax
import pytest

from ssl_jax.models import get_model
from ssl_jax.tasks import classification
from ssl_jax.train import parallel
from ssl_jax.train import step as step_lib

import helpers


def _setup(dropout_rate=0.3, augment=True, axis_name=None, batch=32):
  config = helpers.load_config()
  config.input.augment.crop_padding = 4 if augment else 0
  config.input.augment.flip = augment
  task = classification.make(config, np.full(3, 0.5, np.float32),
                             np.full(3, 0.25, np.float32))
  model = get_model("core_cnn", num_classes=10, features=(8, 16, 16),
                    dense=32, dropout_rate=dropout_rate, axis_name=axis_name)
  rng = np.random.default_rng(0)
  data = {"image": rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8),
          "label": rng.integers(0, 10, (batch,)).astype(np.int32)}
  state = step_lib.create_train_state(
      jax.random.key(1), model, optax.adam(3e-3),
      task.inputs(jax.tree.map(lambda a: a[:1], data), None, False))
  return task, state, data


def test_train_step_lowers_loss_and_eval_is_deterministic():
  task, state, data = _setup(dropout_rate=0.0, augment=False, batch=8)
  step = jax.jit(functools.partial(step_lib.train_step, task=task))
  evaluate = jax.jit(functools.partial(step_lib.eval_step, task=task))
  before = evaluate(state, data)
  for _ in range(30):
    state, _ = step(state, data, jax.random.key(0))
  after = evaluate(state, data)
  loss = lambda m: float(m["loss"][0] / m["loss"][1])
  assert loss(after) < 0.5 * loss(before)
  assert float(after["accuracy"][0]) == 8  # Memorised the 8 examples.
  again = evaluate(state, data)
  jax.tree.map(np.testing.assert_array_equal, again, after)
  # eval_step's sums against an independent computation from the logits.
  logits, _ = state.apply_fn({"params": state.params,
                              "batch_stats": state.batch_stats},
                             task.inputs(data, None, False), train=False)
  logits = np.asarray(logits, np.float64)
  logp = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(
      1, keepdims=True)) - logits.max(1, keepdims=True)
  ce = -logp[np.arange(8), data["label"]].sum()
  np.testing.assert_allclose(after["loss"], [ce, 8], rtol=1e-5)


def test_jit_on_4_devices_equals_one_device():
  """With dropout and augmentation on: randomness must not depend on layout."""
  assert jax.device_count() == 4
  task, state, data = _setup()
  step = functools.partial(step_lib.train_step, task=task)
  eval_step = functools.partial(step_lib.eval_step, task=task)
  one = jax.jit(step)
  ref, ref_metrics = state, None
  for _ in range(3):
    ref, ref_metrics = one(ref, data, jax.random.key(7))
  mesh = parallel.make_mesh()
  got, metrics = helpers.run_steps(parallel.Runner("jit", mesh, step, eval_step), state,
                      data)
  assert got.params["conv1"]["kernel"].sharding.is_fully_replicated
  helpers.assert_trees_close(got.params, ref.params)
  helpers.assert_trees_close(got.batch_stats, ref.batch_stats)
  helpers.assert_trees_close(metrics, ref_metrics, atol=1e-4)


def test_pmap_equals_jit():
  mesh = parallel.make_mesh()
  task, state, data = _setup(dropout_rate=0.0, augment=False)
  step = functools.partial(step_lib.train_step, task=task)
  eval_step = functools.partial(step_lib.eval_step, task=task)
  jit_state, jit_metrics = helpers.run_steps(
      parallel.Runner("jit", mesh, step, eval_step), state, data)
  _, pstate, _ = _setup(dropout_rate=0.0, augment=False, axis_name="data")
  pmap_state, pmap_metrics = helpers.run_steps(
      parallel.Runner("pmap", mesh, step, eval_step), pstate, data)
  helpers.assert_trees_close(pmap_state.params, jit_state.params)
  helpers.assert_trees_close(pmap_state.batch_stats, jit_state.batch_stats)
  helpers.assert_trees_close(pmap_metrics, jit_metrics, atol=1e-4)


def test_batch_size_must_divide_devices():
  task, _, _ = _setup()
  runner = parallel.Runner("jit", parallel.make_mesh(),
                           functools.partial(step_lib.train_step, task=task),
                           functools.partial(step_lib.eval_step, task=task))
  with pytest.raises(ValueError, match="not divisible by the 4 devices"):
    runner.check_batch_size(30, "input.batch_size")
