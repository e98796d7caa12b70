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


def names() -> list[str]:
  return sorted(_MODELS)


def model_class(name: str):
  if name not in _MODELS:
    raise ValueError(f"Unknown model {name!r}; known models: {sorted(_MODELS)}.")
  module, cls = _MODELS[name].split(":")
  return getattr(importlib.import_module(module), cls)


# Fields a model gets from the data, the task or the parallel runner, and
# (dtype) a backbone from its multihead's model.dtype.
_SET_ELSEWHERE = ("parent", "name", "num_classes", "axis_name", "dtype")


def default_fields(name: str) -> dict:
  """The fields of model `name` with their defaults, for a config to list."""
  return {f.name: f.default for f in dataclasses.fields(model_class(name))
          if f.name not in _SET_ELSEWHERE
          and f.default is not dataclasses.MISSING}


def block_pattern(name: str, blocks: int) -> str:
  """Regex of the parameter paths of model `name`'s first `blocks` blocks
  (its stem included), for freezing them when fine-tuning."""
  cls = model_class(name)
  if not hasattr(cls, "block_pattern"):
    raise ValueError(f"Model {name!r} names no blocks to freeze (no "
                     "block_pattern); use mode=full or linear.")
  return cls.block_pattern(blocks)


def get_model(name: str, data_kwargs: dict | None = None, /, **kwargs):
  """Builds the model registered under `name`.

  Args:
    name: a registered model name.
    data_kwargs: sizes the data fixes (num_classes, vocab_size, ...); the
      model takes those it has fields for.
    **kwargs: the model's fields (config.model); unknown ones are an error.
  """
  cls = model_class(name)
  fields = {f.name for f in dataclasses.fields(cls)}
  unknown = set(kwargs) - fields
  if unknown:
    raise ValueError(f"Model {name!r} has no field(s) {sorted(unknown)}; its "
                     f"fields: {sorted(fields - {'parent', 'name'})}.")
  data_kwargs = {k: v for k, v in (data_kwargs or {}).items() if k in fields}
  return cls(**data_kwargs, **kwargs)
