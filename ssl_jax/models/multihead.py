"""A backbone with a classification head and/or a rotation head.

The shape of experiments (B) and (C) (SEEDS.md section 3): one backbone
(any registered model, built with `num_classes=0`), heads on one of its named
features. Parameters live under `backbone`, `class_head` and
`rotation_head`, so a fine-tuning run can take the `backbone` subtree of a
pretraining checkpoint and put fresh heads on it.
"""
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax import models
from ssl_jax.models import heads
from ssl_jax.rotation import NUM_ROTATIONS


class MultiHead(nn.Module):
  """Returns ({'class': logits, 'rotation': logits}, backbone features).

  Only the configured heads appear in the outputs dict.
  """
  num_classes: int = 0  # Class-head outputs (the data sets it); 0 = no head.
  rotation_head: bool = False
  backbone: str = "core_cnn"
  backbone_config: Mapping[str, Any] = None
  features: str = "pre_logits"  # The backbone intermediate the heads read.
  class_head_hidden: Sequence[int] = ()
  rotation_head_hidden: Sequence[int] = ()
  head_dropout_rate: float = 0.0  # On the features, before each head.
  # The class head reads stop_gradient(features): an online linear probe that
  # shows representation quality without shaping the backbone.
  probe: bool = False
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool):
    kwargs = dict(self.backbone_config or {})
    if self.axis_name is not None:
      kwargs["axis_name"] = self.axis_name
    _, inter = models.get_model(self.backbone, None, num_classes=0,
                                name="backbone", **kwargs)(x, train)
    if self.features not in inter:
      raise ValueError(f"model.features={self.features!r} is not a feature of "
                       f"{self.backbone!r}; it has {sorted(inter)}.")
    f = inter[self.features]
    if f.ndim > 2:  # A feature map: global average pooling.
      f = jnp.mean(f, axis=tuple(range(1, f.ndim - 1)))
    f = nn.Dropout(self.head_dropout_rate, deterministic=not train)(f)
    out = {}
    if self.num_classes:
      head_in = jax.lax.stop_gradient(f) if self.probe else f
      out["class"] = heads.MLPHead(self.num_classes, self.class_head_hidden,
                                   self.head_dropout_rate,
                                   name="class_head")(head_in, train)
    if self.rotation_head:
      out["rotation"] = heads.MLPHead(NUM_ROTATIONS, self.rotation_head_hidden,
                                      self.head_dropout_rate,
                                      name="rotation_head")(f, train)
    return out, inter
