"""Optimizers and learning-rate schedules from `config.optimizer` (optax)."""
import re

import jax
import jax.numpy as jnp
import optax

from ssl_jax import plugins
from ssl_jax.train import checkpoints

# Optimizers: fn(learning rate or schedule, config.optimizer) -> optax
# transformation; `optimizer.name` names one of these or an import path
# (ssl_jax/plugins.py).


def adam(lr, c):
  del c
  return optax.adam(lr)


def adamw(lr, c):
  return optax.adamw(lr, weight_decay=c.weight_decay)


def sgd(lr, c):
  del c
  return optax.sgd(lr)


def momentum(lr, c):
  """SGD with momentum `c.momentum` (0.9 where the config has none),
  Nesterov's unless `c.nesterov` is False."""
  return optax.sgd(lr, momentum=c.get("momentum", 0.9),
                   nesterov=c.get("nesterov", True))


def rmsprop(lr, c):
  del c
  return optax.rmsprop(lr)


def adadelta(lr, c):
  del c
  return optax.adadelta(lr)


# Schedules: fn(config.optimizer, total steps, steps per epoch) -> the
# schedule after warmup; `optimizer.schedule` names one or an import path.


def constant(c, total_steps, steps_per_epoch):
  del total_steps, steps_per_epoch
  return optax.constant_schedule(c.learning_rate)


def cosine(c, total_steps, steps_per_epoch):
  """Cosine decay to zero over the steps after warmup."""
  del steps_per_epoch
  return optax.cosine_decay_schedule(c.learning_rate,
                                     max(total_steps - c.warmup_steps, 1))


def fixmatch_cosine(c, total_steps, steps_per_epoch):
  """FixMatch's lr * cos(7 pi k / (16 K)) over the K steps after warmup: it
  ends at cos(7 pi / 16) = 0.195 of the peak, not at zero."""
  del steps_per_epoch
  decay = max(total_steps - c.warmup_steps, 1)
  return lambda k: c.learning_rate * jnp.cos(7 * jnp.pi * k / (16 * decay))


def step(c, total_steps, steps_per_epoch):
  """Times `decay_factor` every `decay_every_epochs` epochs, counted from
  epoch `decay_begin_epochs` (0 where the config has none)."""
  del total_steps
  every, factor = c.get("decay_every_epochs", 0), c.get("decay_factor", 0)
  if not (steps_per_epoch and every and factor):
    # optax would silently make such a schedule constant.
    raise ValueError("optimizer.schedule='step' needs the fields "
                     "optimizer.decay_every_epochs > 0 and decay_factor > 0, "
                     f"and the epoch length, got {every}, {factor}, "
                     f"{steps_per_epoch}.")
  return optax.exponential_decay(
      c.learning_rate, c.decay_every_epochs * steps_per_epoch, c.decay_factor,
      c.get("decay_begin_epochs", 0) * steps_per_epoch, staircase=True)


def make_schedule(config, total_steps: int,
                  steps_per_epoch: int = 0) -> optax.Schedule:
  """`config.schedule` after `warmup_steps` of linear warmup."""
  lr, warmup = config.learning_rate, config.warmup_steps
  main = plugins.load("schedule", config.schedule, "optimizer.schedule")(
      config, total_steps, steps_per_epoch)
  if not warmup:
    return main
  return optax.join_schedules(
      [optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def frozen_labels(pattern: str):
  """params -> 'frozen' / 'trained' per leaf, by a regex on the leaf's path.

  Paths read like 'backbone/conv1/kernel'; a pattern matching nothing is an
  error (a typo would otherwise silently train everything).
  """
  def labels(params):
    paths = jax.tree_util.tree_map_with_path(
        lambda p, _: checkpoints.path_str(p), params)
    if not any(re.search(pattern, p) for p in jax.tree.leaves(paths)):
      raise ValueError(f"optimizer.frozen_params={pattern!r} matches no "
                       f"parameter; paths look like "
                       f"{jax.tree.leaves(paths)[:3]}.")
    return jax.tree.map(
        lambda p: "frozen" if re.search(pattern, p) else "trained", paths)
  return labels


def make_optimizer(config, total_steps: int, steps_per_epoch: int = 0,
                   lr_scale: float = 1.0) -> optax.GradientTransformation:
  """The optimizer named by `config.name`, with clipping and L2 if asked;
  its schedule times `lr_scale` (a training phase's factor).

  Parameters matching `config.frozen_params` (a regex; '' = none) are never
  updated: no gradient step, no weight decay, no optimizer state.
  """
  tx = _make_trained(config, total_steps, steps_per_epoch, lr_scale)
  frozen = config.frozen_params
  if not frozen:
    return tx
  return optax.multi_transform({"trained": tx, "frozen": optax.set_to_zero()},
                               frozen_labels(frozen))


def clip_each_by_norm(max_norm: float) -> optax.GradientTransformation:
  """Each parameter array's gradient scaled down to norm `max_norm` (the
  MemN2N authors' code, `Weight.update`): the spectral norm of a matrix, as
  MATLAB's norm(), else the vector norm."""
  def clip(g):
    norm = jnp.linalg.norm(g, ord=2 if g.ndim == 2 else None)
    return g * jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-30))
  return optax.stateless(lambda updates, params=None: jax.tree.map(
      clip, updates))


def _make_trained(config, total_steps: int, steps_per_epoch: int,
                  lr_scale: float) -> optax.GradientTransformation:
  optimizer = plugins.load("optimizer", config.name, "optimizer.name")
  parts = []
  if config.grad_clip_norm:
    parts.append(clip_each_by_norm(config.grad_clip_norm)
                 if config.get("clip_per_param", False)
                 else optax.clip_by_global_norm(config.grad_clip_norm))
  if config.weight_decay and config.name != "adamw":
    parts.append(optax.add_decayed_weights(config.weight_decay))
  schedule = make_schedule(config, total_steps, steps_per_epoch)
  # Any factor keeps a callable learning rate, hence the same optimizer state
  # structure: phases can swap the optimizer on the same state.
  parts.append(optimizer(lambda s: lr_scale * schedule(s),
                                        config))
  return optax.chain(*parts)
