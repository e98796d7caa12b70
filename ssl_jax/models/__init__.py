"""Model registry: `config.model.name` -> Flax Linen module.

Every model is called as `model.apply(variables, x, train=...)` and returns
`(outputs, intermediates)`; `intermediates` is a dict of named features
(`pre_logits`, per-block features, ...) for extra heads and probes.
"""
import dataclasses
import importlib

# name -> "module:Class", imported lazily so that a model's heavy
# dependencies are only loaded when it is used.
_MODELS = {
    "core_cnn": "ssl_jax.models.core_cnn:CoreCNN",
    "efficientnet": "ssl_jax.models.efficientnet:EfficientNet",
    "memnet_keras": "ssl_jax.models.memnet:MemNetKeras",
    "memn2n": "ssl_jax.models.memnet:MemN2N",
    "multihead": "ssl_jax.models.multihead:MultiHead",
    "resnet": "ssl_jax.models.resnet:ResNet",
}


def get_model(name: str, data_kwargs: dict | None = None, /, **kwargs):
  """Builds the model registered under `name`.

  Args:
    name: a registered model name.
    data_kwargs: sizes the data fixes (num_classes, vocab_size, ...); the
      model takes those it has fields for.
    **kwargs: the model's fields (config.model); unknown ones are an error.
  """
  if name not in _MODELS:
    raise ValueError(f"Unknown model {name!r}; known models: {sorted(_MODELS)}.")
  module, cls = _MODELS[name].split(":")
  cls = getattr(importlib.import_module(module), cls)
  fields = {f.name for f in dataclasses.fields(cls)}
  unknown = set(kwargs) - fields
  if unknown:
    raise ValueError(f"Model {name!r} has no field(s) {sorted(unknown)}; its "
                     f"fields: {sorted(fields - {'parent', 'name'})}.")
  data_kwargs = {k: v for k, v in (data_kwargs or {}).items() if k in fields}
  return cls(**data_kwargs, **kwargs)
