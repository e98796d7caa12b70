"""Model registry: `config.model.name` -> Flax Linen module.

Every model is called as `model.apply(variables, x, train=...)` and returns
`(outputs, intermediates)`; `intermediates` is a dict of named features
(`pre_logits`, per-block features, ...) for extra heads and probes.
"""
import importlib

# name -> "module:Class", imported lazily so that a model's heavy
# dependencies are only loaded when it is used.
_MODELS = {
    "core_cnn": "ssl_jax.models.core_cnn:CoreCNN",
    "efficientnet": "ssl_jax.models.efficientnet:EfficientNet",
    "memnet_keras": "ssl_jax.models.memnet:MemNetKeras",
    "memn2n": "ssl_jax.models.memnet:MemN2N",
}


def get_model(name: str, **kwargs):
  """Builds the model registered under `name` with keyword arguments."""
  if name not in _MODELS:
    raise ValueError(f"Unknown model {name!r}; known models: {sorted(_MODELS)}.")
  module, cls = _MODELS[name].split(":")
  return getattr(importlib.import_module(module), cls)(**kwargs)
