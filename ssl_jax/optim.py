"""Optimizers and learning-rate schedules from `config.optimizer` (optax)."""
import re

import jax
import optax

from ssl_jax import checkpointing

_OPTIMIZERS = {
    "adam": lambda lr, c: optax.adam(lr),
    "adamw": lambda lr, c: optax.adamw(lr, weight_decay=c.weight_decay),
    "sgd": lambda lr, c: optax.sgd(lr),
    "momentum": lambda lr, c: optax.sgd(lr, momentum=c.momentum,
                                        nesterov=True),
    "rmsprop": lambda lr, c: optax.rmsprop(lr),
    "adadelta": lambda lr, c: optax.adadelta(lr),
}


def names() -> list[str]:
  return sorted(_OPTIMIZERS)


def make_schedule(config, total_steps: int) -> optax.Schedule:
  """'constant' or 'cosine' decay to zero, after `warmup_steps` linear warmup."""
  lr, warmup = config.learning_rate, config.warmup_steps
  if config.schedule == "constant":
    main = optax.constant_schedule(lr)
  elif config.schedule == "cosine":
    main = optax.cosine_decay_schedule(lr, max(total_steps - warmup, 1))
  else:
    raise ValueError(f"optimizer.schedule must be 'constant' or 'cosine', got "
                     f"{config.schedule!r}.")
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
        lambda p, _: checkpointing.path_str(p), params)
    if not any(re.search(pattern, p) for p in jax.tree.leaves(paths)):
      raise ValueError(f"optimizer.frozen_params={pattern!r} matches no "
                       f"parameter; paths look like "
                       f"{jax.tree.leaves(paths)[:3]}.")
    return jax.tree.map(
        lambda p: "frozen" if re.search(pattern, p) else "trained", paths)
  return labels


def make_optimizer(config, total_steps: int) -> optax.GradientTransformation:
  """The optimizer named by `config.name`, with clipping and L2 if asked.

  Parameters matching `config.frozen_params` (a regex; '' = none) are never
  updated: no gradient step, no weight decay, no optimizer state.
  """
  tx = _make_trained(config, total_steps)
  frozen = config.frozen_params
  if not frozen:
    return tx
  return optax.multi_transform({"trained": tx, "frozen": optax.set_to_zero()},
                               frozen_labels(frozen))


def _make_trained(config, total_steps: int) -> optax.GradientTransformation:
  if config.name not in _OPTIMIZERS:
    raise ValueError(f"Unknown optimizer {config.name!r}; known: "
                     f"{sorted(_OPTIMIZERS)}.")
  parts = []
  if config.grad_clip_norm:
    parts.append(optax.clip_by_global_norm(config.grad_clip_norm))
  if config.weight_decay and config.name != "adamw":
    parts.append(optax.add_decayed_weights(config.weight_decay))
  parts.append(_OPTIMIZERS[config.name](make_schedule(config, total_steps),
                                        config))
  return optax.chain(*parts)
