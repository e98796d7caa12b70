"""Optimizers and learning-rate schedules from `config.optimizer` (optax)."""
import optax

_OPTIMIZERS = {
    "adam": lambda lr, c: optax.adam(lr),
    "adamw": lambda lr, c: optax.adamw(lr, weight_decay=c.weight_decay),
    "sgd": lambda lr, c: optax.sgd(lr),
    "momentum": lambda lr, c: optax.sgd(lr, momentum=c.momentum,
                                        nesterov=True),
    "rmsprop": lambda lr, c: optax.rmsprop(lr),
    "adadelta": lambda lr, c: optax.adadelta(lr),
}


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


def make_optimizer(config, total_steps: int) -> optax.GradientTransformation:
  """The optimizer named by `config.name`, with clipping and L2 if asked."""
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
