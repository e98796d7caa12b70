"""The two-head (class + rotation) task: masked losses, weights, devices."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssl_jax import parallel
from ssl_jax import train
from ssl_jax import utility
from ssl_jax.models import get_model
from ssl_jax.tasks import multitask

import helpers

BACKBONE = {"features": (8, 16, 16), "dense": 32, "dropout_rate": 0.3}


def _task(class_weight=1.0, rotation_weight=1.0, mode="all", augment=True):
  config = helpers.load_config("multitask")
  config.loss.class_weight = class_weight
  config.loss.rotation_weight = rotation_weight
  config.input.rotation_mode = mode
  config.input.augment.crop_padding = 4 if augment else 0
  config.input.augment.flip = augment
  return multitask.make(config, np.full(3, 0.5, np.float32),
                        np.full(3, 0.25, np.float32))


def _setup(task, axis_name=None, batch=32, labeled=8, dropout=True):
  model = get_model(
      "multihead", num_classes=10, rotation_head=True,
      backbone_config={**BACKBONE, "dropout_rate": 0.3 * dropout},
      head_dropout_rate=0.2 * dropout, axis_name=axis_name)
  rng = np.random.default_rng(0)
  data = {"image": rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8),
          "label": rng.integers(0, 10, (batch,)).astype(np.int32),
          "labeled": (np.arange(batch) % (batch // labeled) == 0).astype(
              np.float32)}
  sample = task.inputs(task.expand(jax.tree.map(lambda a: a[:1], data), None,
                                   False), None, False)
  state = train.create_train_state(jax.random.key(1), model,
                                   optax.adam(3e-3), sample)
  return state, data


def _log_softmax(z):
  z = np.asarray(z, np.float64)
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_masked_loss_equals_hand_computation():
  rng = np.random.default_rng(1)
  n = 12
  logits = {"class": rng.normal(size=(n, 10)), "rotation": rng.normal(size=(
      n, 4))}
  batch = {"label": rng.integers(0, 10, n), "rotation_label": rng.integers(
      0, 4, n), "class_mask": (rng.random(n) < 0.4).astype(np.float32),
           "rotation_mask": (rng.random(n) < 0.8).astype(np.float32)}
  batch["label"][batch["class_mask"] == 0] = -1  # Unlabeled: no label at all.
  total, metrics = multitask.loss(
      (jax.tree.map(jnp.asarray, logits), {}), batch, class_weight=3.0,
      rotation_weight=0.5)
  ce = lambda z, y: -_log_softmax(z)[np.arange(n), np.maximum(y, 0)]
  mean = lambda v, m: (v * m).sum() / m.sum()
  l_cls = mean(ce(logits["class"], batch["label"]), batch["class_mask"])
  l_rot = mean(ce(logits["rotation"], batch["rotation_label"]),
               batch["rotation_mask"])
  np.testing.assert_allclose(total, 3.0 * l_cls + 0.5 * l_rot, rtol=1e-5)
  np.testing.assert_allclose(metrics["class_loss"],
                             [l_cls * batch["class_mask"].sum(),
                              batch["class_mask"].sum()], rtol=1e-5)


def _grads(task, state, data, labeled=None):
  if labeled is not None:
    data = {**data, "labeled": np.full_like(data["labeled"], labeled)}
  batch = task.expand(data, jax.random.key(2), True)
  x = task.inputs(batch, jax.random.key(3), True)

  def loss_fn(params):
    outputs, _ = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, x, train=True,
        rngs={"dropout": jax.random.key(4)}, mutable=["batch_stats"])
    return task.loss(outputs, batch)[0]
  return jax.jit(jax.grad(loss_fn))(state.params)


def test_no_labeled_examples_give_the_class_head_zero_gradient():
  task = _task()
  state, data = _setup(task)
  grads = _grads(task, state, data, labeled=0.0)
  for g in jax.tree.leaves(grads["class_head"]):
    assert np.all(np.asarray(g) == 0)
  assert np.abs(np.asarray(grads["rotation_head"]["out"]["kernel"])).max() > 0
  with_labels = _grads(task, state, data)
  assert np.abs(np.asarray(with_labels["class_head"]["out"]["kernel"])).max(
  ) > 0


def test_doubling_a_weight_doubles_its_gradient_contribution():
  state, data = _setup(_task())
  g = {w: _grads(_task(*w), state, data)
       for w in [(1.0, 1.0), (2.0, 1.0), (1.0, 2.0), (1.0, 0.0), (0.0, 1.0)]}
  for doubled, alone in [((2.0, 1.0), (1.0, 0.0)), ((1.0, 2.0), (0.0, 1.0))]:
    # g(2 w1, w2) - g(w1, w2) is the gradient of w1's loss alone.
    jax.tree.map(lambda a, b, c: np.testing.assert_allclose(
        np.asarray(a) - np.asarray(b), c, atol=2e-6, rtol=1e-4),
                 g[doubled], g[(1.0, 1.0)], g[alone])


def test_two_head_step_on_4_devices_equals_one_device_and_pmap():
  assert jax.device_count() == 4
  mesh = parallel.make_mesh()
  for mode in ("all", "random"):
    task = _task(2.0, 0.5, mode)
    step = functools.partial(train.train_step, task=task)
    eval_step = functools.partial(train.eval_step, task=task)
    state, data = _setup(task)
    ref, ref_metrics = state, None
    for _ in range(3):
      ref, ref_metrics = jax.jit(step)(ref, data, jax.random.key(7))
    got, metrics = helpers.run_steps(parallel.Runner("jit", mesh, step, eval_step), state,
                        data)
    helpers.assert_trees_close(got.params, ref.params)
    helpers.assert_trees_close(got.batch_stats, ref.batch_stats)
    helpers.assert_trees_close(metrics, ref_metrics, atol=1e-4)
  # pmap: the loss normalisation and metric shares must add up across devices.
  task = _task(2.0, 0.5, augment=False)
  step = functools.partial(train.train_step, task=task)
  eval_step = functools.partial(train.eval_step, task=task)
  state, data = _setup(task, dropout=False)
  jit_state, jit_metrics = helpers.run_steps(parallel.Runner("jit", mesh, step, eval_step),
                                state, data)
  pstate, _ = _setup(task, axis_name="data", dropout=False)
  pmap_state, pmap_metrics = helpers.run_steps(
      parallel.Runner("pmap", mesh, step, eval_step), pstate, data)
  helpers.assert_trees_close(pmap_state.params, jit_state.params)
  helpers.assert_trees_close(pmap_metrics, jit_metrics, atol=1e-4)


def test_utility_on_synthetic_curves():
  budgets = [100, 200, 400, 800]
  scratch = [0.20, 0.30, 0.40, 0.50]  # Linear in log2(n): 0.1 per doubling.
  # SSL at 100 = scratch at 200 (U = 1); at 200 = scratch at ~283 (half a
  # doubling: U = sqrt(2) - 1); at 400 beyond anything scratch reached (inf);
  # at 800 below scratch at 800: U < 0 (n' = 400).
  ssl = [0.30, 0.35, 0.55, 0.40]
  u = utility.utility(budgets, scratch, ssl)
  np.testing.assert_allclose(u[:2], [1.0, np.sqrt(2) - 1], rtol=1e-9)
  assert u[2] == np.inf
  np.testing.assert_allclose(u[3], 400 / 800 - 1, rtol=1e-9)
  # Outside the budgets, the text gives the bound: n' > 800 at n = 400.
  assert utility.describe(u[2], 400, budgets) == "inf (n' > 800: U > 1.000)"
  assert utility.describe(u[1], 200, budgets) == "0.414"
  assert utility.describe(np.nan, 200, budgets) == (
      "nan (n' < 100: U < -0.500)")
  # Equal curves: no gain anywhere.
  np.testing.assert_allclose(utility.utility(budgets, scratch, scratch),
                             0.0, atol=1e-12)
