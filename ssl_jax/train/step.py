"""The pure, jitted pieces of training: the state, one optimizer step, one
evaluation step and inference. They read no config: the loop passes the task
and the EMA decay in."""
from typing import Any

from flax.training import train_state
import jax
import jax.numpy as jnp


class TrainState(train_state.TrainState):
  batch_stats: Any = None
  # {'params', 'batch_stats'}: their exponential moving average, or None.
  ema: Any = None
  # What the task's methods keep across steps (an EMA teacher, ...), or None.
  method_state: Any = None

  def with_ema_reset(self):
    """The EMA (if any) restarted at a copy of the current weights: buffers
    of their own, as the steps donate the state."""
    if self.ema is None:
      return self
    return self.replace(ema=jax.tree.map(jnp.copy, {
        "params": self.params, "batch_stats": self.batch_stats}))

  def ema_weights(self):
    """This state with the EMA as its weights, for evaluation."""
    return self.replace(params=self.ema["params"],
                        batch_stats=self.ema["batch_stats"])


def create_train_state(rng, model, tx, sample_input, ema: bool = False,
                       init_state=None) -> TrainState:
  """A fresh state; `init_state(variables)` starts the methods' state."""
  variables = model.init(rng, sample_input, train=False)
  variables = {"params": variables["params"],
               "batch_stats": variables.get("batch_stats", {})}
  state = TrainState.create(
      apply_fn=model.apply, params=variables["params"], tx=tx,
      batch_stats=variables["batch_stats"], ema={} if ema else None,
      method_state=None if init_state is None else init_state(variables))
  return state.with_ema_reset()


def _loss(task, outputs, batch, axis_name, method_state):
  """The task's loss; a task with method state also reads it."""
  if method_state is None:
    return task.loss(outputs, batch, axis_name)
  return task.loss(outputs, batch, axis_name, method_state)


def _with_teacher(task, state, batch, x, train, rng=None):
  """`batch` with the task's teacher outputs on inputs `x` as 'teacher'."""
  if task.teacher is None:
    return batch
  return {**batch, "teacher": jax.lax.stop_gradient(task.teacher(
      state.apply_fn, state.method_state, x, rng, train))}


def train_step(state: TrainState, batch: dict, rng: jax.Array, *, task,
               axis_name: str | None = None, ema_decay: float = 0.0):
  """One optimizer step on `batch`; returns (new state, metric sums).

  With `state.ema`, it moves to ema_decay * ema + (1 - ema_decay) * the new
  parameters and BatchNorm statistics; with `state.method_state`, the
  task's `update_state` gives its next value from the new variables (no
  gradient flows into it). A task's `teacher` networks run first, on the
  same inputs, and their outputs join the batch as 'teacher'.

  The step's randomness is `rng` folded with the step number (and the device
  under pmap), so it needs no host-side RNG bookkeeping and resumes exactly.
  """
  rng = jax.random.fold_in(rng, state.step)
  if axis_name is not None:
    rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))
  input_rng, dropout_rng = jax.random.split(rng)
  if task.expand is not None:
    batch = task.expand(batch, jax.random.fold_in(input_rng, 1), train=True)
  x = task.inputs(batch, input_rng, train=True)
  batch = _with_teacher(task, state, batch, x, train=True,
                        rng=jax.random.fold_in(dropout_rng, 1))

  def loss_fn(params):
    outputs, updates = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, x, train=True,
        rngs={"dropout": dropout_rng}, mutable=["batch_stats"])
    loss, metrics = _loss(task, outputs, batch, axis_name, state.method_state)
    return loss, (metrics, updates)

  grads, (metrics, updates) = jax.grad(loss_fn, has_aux=True)(state.params)
  if axis_name is not None:
    # Losses are normalised by global counts, so the global gradient is a sum.
    grads, metrics = jax.lax.psum((grads, metrics), axis_name)
  state = state.apply_gradients(
      grads=grads, batch_stats=updates.get("batch_stats", state.batch_stats))
  if state.ema is not None:
    state = state.replace(ema=jax.tree.map(
        lambda e, w: ema_decay * e + (1 - ema_decay) * w, state.ema,
        {"params": state.params, "batch_stats": state.batch_stats}))
  if state.method_state is not None:
    state = state.replace(method_state=jax.lax.stop_gradient(
        task.update_state(state.method_state, {
            "params": state.params, "batch_stats": state.batch_stats},
                          step=state.step, teacher=batch.get("teacher", {}),
                          axis_name=axis_name)))
  return state, metrics


def eval_step(state: TrainState, batch: dict, *, task,
              axis_name: str | None = None):
  """Metric sums of the model in inference mode on `batch`."""
  if task.expand is not None:
    batch = task.expand(batch, None, train=False)
  x = task.inputs(batch, None, train=False)
  batch = _with_teacher(task, state, batch, x, train=False)
  outputs = state.apply_fn({"params": state.params,
                            "batch_stats": state.batch_stats}, x, train=False)
  _, metrics = _loss(task, outputs, batch, axis_name, state.method_state)
  if axis_name is not None:
    metrics = jax.lax.psum(metrics, axis_name)
  return metrics


@jax.jit
def predict(state: TrainState, x):
  """Model outputs in inference mode, for reports and interactive use."""
  return state.apply_fn({"params": state.params,
                         "batch_stats": state.batch_stats}, x, train=False)


@jax.jit
def add(a, b):
  """Leafwise sum of two metric-sum trees."""
  return jax.tree.map(jnp.add, a, b)
