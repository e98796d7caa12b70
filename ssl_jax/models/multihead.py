"""One backbone, any set of declared heads (experiments B and C, S4L).

The backbone is any registered model (built with `num_classes=0`); the task
declares the heads it needs (`heads.HeadSpec`) and this model builds them,
so it knows nothing of pretext tasks. Its input is an image batch or a dict
of named groups of images (the batch, its rotations, jigsaw tiles, ...);
groups whose examples have the same shape go through the backbone in one
pass, so they share BatchNorm statistics as one batch would; groups
'g/1', 'g/2', ... are more rows of group g at other sizes (multi-crop), and
a head that reads g reads them too, after g's rows. Parameters
live under `backbone` and `<head>_head`, so a fine-tuning run can take the
`backbone` subtree of a pretraining checkpoint and put fresh heads on it.
"""
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax import models
from ssl_jax.models import heads as heads_lib


class MultiHead(nn.Module):
  """Returns ({head: outputs}, {group: pooled backbone features}).

  A head whose groups are all absent from the input is not run (a plain
  batch gets the class head alone).
  """
  heads: Mapping[str, heads_lib.HeadSpec] = None  # Declared by the task.
  backbone: str = "core_cnn"
  backbone_config: Mapping[str, Any] = None
  feature_level: str = "pre_logits"  # The backbone intermediate heads read.
  head_dropout_rate: float = 0.0  # On the features, before each head.
  axis_name: str | None = None
  # Computation dtype of the backbone and the heads ('float32' or
  # 'bfloat16'); parameters and statistics stay float32, head outputs are
  # float32. The backbone gets it from here, not from backbone_config.
  dtype: Any = "float32"

  @nn.compact
  def __call__(self, x, train: bool):
    groups = dict(x) if isinstance(x, Mapping) else {"image": x}
    kwargs = dict(self.backbone_config or {})
    if self.axis_name is not None:
      kwargs["axis_name"] = self.axis_name
    if kwargs.setdefault("dtype", self.dtype) != self.dtype:
      raise ValueError(f"backbone_config.dtype={kwargs['dtype']!r} differs "
                       f"from model.dtype={self.dtype!r}; set model.dtype "
                       "alone (it covers the backbone and the heads).")
    backbone = models.get_model(self.backbone, None, num_classes=0,
                                name="backbone", **kwargs)
    by_shape = {}
    for name, images in groups.items():
      by_shape.setdefault(images.shape[1:], []).append(name)
    features, dropped = {}, {}
    for names in by_shape.values():
      joined = jnp.concatenate([groups[n] for n in names])
      f = pooled(backbone(joined, train)[1], self.feature_level,
                 self.backbone)
      d = nn.Dropout(self.head_dropout_rate, deterministic=not train)(f)
      sizes = [len(groups[n]) for n in names]
      bounds = [sum(sizes[:i]) for i in range(1, len(sizes))]
      features.update(zip(names, jnp.split(f, bounds)))
      dropped.update(zip(names, jnp.split(d, bounds)))
    out, layers = {}, {}
    for name, spec in (self.heads or {}).items():
      spec = heads_lib.HeadSpec(*spec)
      if spec.shares:
        layers[name] = layers[spec.shares]
      elif spec.module is not None:
        layers[name] = spec.module(dtype=self.dtype, axis_name=self.axis_name,
                                   name=f"{name}_head")
      else:
        layers[name] = heads_lib.MLPHead(
            spec.outputs, tuple(spec.hidden), self.head_dropout_rate,
            self.dtype, name=f"{name}_head")
      group = next((g for g in spec.groups if g in dropped), None)
      if group is None:
        continue
      # Group 'g/1', 'g/2', ...: more rows of g at other image sizes.
      parts = [group] + sorted((g for g in dropped
                                if g.startswith(group + "/")),
                               key=lambda g: int(g.rsplit("/", 1)[1]))
      f = jnp.concatenate([dropped[g] for g in parts])
      f = f.reshape(f.shape[0] // spec.concat, spec.concat * f.shape[-1])
      if spec.stop_gradient:
        f = jax.lax.stop_gradient(f)
      out[name] = jax.tree.map(lambda y: y.astype(jnp.float32),
                               layers[name](f, train))
    return out, features


def pooled(inter: dict, level: str, backbone: str) -> jax.Array:
  """Feature `level` of a backbone's intermediates, a feature map globally
  average-pooled: what the heads read."""
  if level not in inter:
    raise ValueError(f"model.feature_level={level!r} is not a feature of "
                     f"{backbone!r}; it has {sorted(inter)}.")
  f = inter[level]
  if f.ndim > 2:
    f = jnp.mean(f, axis=tuple(range(1, f.ndim - 1)))
  return f


def backbone_features(model_config, inputs):
  """Jittable (variables, batch) -> the pooled features MultiHead's heads
  read (float32), from the backbone alone in inference mode; `variables`
  are MultiHead's and `inputs` the task's (batch, rng, train) -> images."""
  backbone = models.get_model(model_config.backbone, None, num_classes=0,
                              dtype=model_config.get("dtype", "float32"),
                              **dict(model_config.backbone_config or {}))

  def fn(variables, batch):
    sub = {k: v["backbone"] for k, v in variables.items() if "backbone" in v}
    inter = backbone.apply(sub, inputs(batch, None, False), train=False)[1]
    return pooled(inter, model_config.feature_level,
                  model_config.backbone).astype(jnp.float32)
  return fn
