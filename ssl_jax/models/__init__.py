"""Models: `config.model.name` (and `model.backbone`) -> a Flax Linen module.

A built-in goes by its short name (ssl_jax/plugins.py lists them); a model of
your own by its import path: a module whose `Model` is the class, or
'module:Class'. What a model class provides:
  * `__call__(x, train: bool)` -> `(outputs, intermediates)`: `outputs` the
    class logits (float32), `intermediates` a dict of named features
    (`pre_logits`, per-block feature maps, ...) that heads and probes read
    (`model.feature_level` picks one; feature maps are average-pooled);
  * a field `num_classes` (0: no class head, as a backbone is built); the
    data sets it, with any of `vocab_size`, ... that the model has a field
    for;
  * fields `dtype` ('float32' or 'bfloat16' compute) and `axis_name` (the
    pmap axis, for BatchNorm statistics), set by the run;
  * optionally `block_pattern(blocks) -> regex` (a static or class method) over the
    parameter paths of its first `blocks` blocks, stem included, which
    `configs/finetune.py:mode=frozen_blocks` freezes.
Every other field with a default is the model's config (`model.*`, or
`model.backbone_config` for a backbone).
"""
import dataclasses

from ssl_jax import plugins


def names() -> list[str]:
  return plugins.names("model")


def model_class(name: str, field: str = "model.name"):
  return plugins.load("model", name, field)


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
  cls = model_class(name, "model.backbone")
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
