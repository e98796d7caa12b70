"""The seeds' "core" CNN (SEEDS.md section 3) with a configurable head.

Conv-ReLU-Norm-MaxPool-Dropout blocks with 'valid' convolutions, then
Dense-ReLU-Norm-Dropout. With the defaults it is the seeds' 230,336-parameter
network (counting BatchNorm's running statistics, as Keras does).
"""
from typing import Sequence

import flax.linen as nn
import jax

from ssl_jax import norms
from ssl_jax.models import heads
from ssl_jax.models import layers


class CoreCNN(nn.Module):
  """Backbone + head; `num_classes=0` returns the features instead of logits."""
  num_classes: int = 0
  features: Sequence[int] = (32, 64, 128)
  pool_sizes: Sequence[int] = (3, 2, 2)
  dense: int = 1024
  head_hidden: Sequence[int] = ()
  activation: str = "relu"
  dropout_rate: float = 0.3
  norm: str = "batch"
  norm_momentum: float = 0.9
  num_groups: int = 8
  axis_name: str | None = None
  conv_lowering: str = "auto"  # See layers.Conv: im2col on CPU by default.

  @nn.compact
  def __call__(self, x: jax.Array, train: bool):
    act = getattr(nn, self.activation)
    norm = norms.norm_layer(self.norm, train=train, axis_name=self.axis_name,
                            momentum=self.norm_momentum,
                            num_groups=self.num_groups)
    out = {}
    for i, (f, p) in enumerate(zip(self.features, self.pool_sizes)):
      x = act(layers.Conv(f, (3, 3), padding="VALID", name=f"conv{i + 1}",
                          lowering=self.conv_lowering)(x))
      x = norm(name=f"norm{i + 1}")(x)
      # SAME: identical to VALID on 32x32, and 28x28 inputs keep a 1x1 map.
      x = layers.max_pool(x, p, self.conv_lowering)
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
      out[f"block{i + 1}"] = x
    x = x.reshape(x.shape[0], -1)
    if self.dense:
      x = act(nn.Dense(self.dense, name="dense")(x))
      # A vector has no spatial axes: its instance norm is its layer norm.
      kind = "layer" if self.norm == "instance" else self.norm
      x = norms.norm_layer(kind, train=train, axis_name=self.axis_name,
                           momentum=self.norm_momentum,
                           num_groups=self.num_groups)(name="norm_dense")(x)
    out["pre_logits"] = x
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    if not self.num_classes:
      return x, out
    logits = heads.MLPHead(self.num_classes, self.head_hidden,
                           self.dropout_rate, name="head")(x, train)
    return logits, out
