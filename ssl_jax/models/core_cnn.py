"""The seeds' CNNs (SEEDS.md sections 3-4): a configurable family.

Blocks of (Conv-ReLU-Norm) x convs_per_block, then a max or average pool and
dropout; then Dense-ReLU-Norm-Dropout and a head. With the defaults it is the
seeds' 230,336-parameter "core" network (counting BatchNorm's running
statistics, as Keras does); configs/cnn.py is their full-data baseline (two
'same' 3x3 convs per block) and the search space of their random search.
"""
from typing import Sequence

import flax.linen as nn
import jax

from ssl_jax.models import heads
from ssl_jax.models import layers
from ssl_jax.models import norms


class CoreCNN(norms.NormedModel):
  """Backbone + head; `num_classes=0` returns the features instead of logits."""
  num_classes: int = 0
  features: Sequence[int] = (32, 64, 128)
  pool_sizes: Sequence[int] = (3, 2, 2)
  pool_types: Sequence[str] = ()  # 'max' or 'avg' per block; () = all max.
  convs_per_block: int = 1
  kernel_size: int = 3
  padding: str = "VALID"
  dense: int = 1024
  head_hidden: Sequence[int] = ()
  activation: str = "relu"
  dropout_rate: float = 0.3

  @staticmethod
  def block_pattern(blocks: int) -> str:
    """The first `blocks` blocks' convs and norms (for freezing them)."""
    return f"(conv|norm)[1-{blocks}](_[0-9]+)?/"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool):
    act = getattr(nn, self.activation)
    dtype = self.compute_dtype
    norm = self.norm_layer(train)
    pool_types = self.pool_types or ("max",) * len(self.features)
    if not len(self.features) == len(self.pool_sizes) == len(pool_types):
      raise ValueError(
          f"features {tuple(self.features)}, pool_sizes "
          f"{tuple(self.pool_sizes)} and pool_types {tuple(pool_types)} need "
          "one entry per block.")
    out = {}
    for i, (f, p, kind) in enumerate(zip(self.features, self.pool_sizes,
                                         pool_types)):
      for j in range(self.convs_per_block):
        suffix = f"{i + 1}" + (f"_{j + 1}" if j else "")
        x = act(layers.Conv(f, (self.kernel_size,) * 2, padding=self.padding,
                            name=f"conv{suffix}", dtype=dtype,
                            lowering=self.conv_lowering)(x))
        x = norm(name=f"norm{suffix}")(x)
      # SAME: identical to VALID on 32x32, and 28x28 inputs keep a 1x1 map.
      x = layers.pool(x, p, kind, self.conv_lowering)
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
      out[f"block{i + 1}"] = x
    x = x.reshape(x.shape[0], -1)
    if self.dense:
      x = act(layers.Dense(self.dense, dtype=dtype, name="dense")(x))
      # A vector has no spatial axes: its instance norm is its layer norm.
      kind = "layer" if self.norm == "instance" else self.norm
      x = self.norm_layer(train, kind)(name="norm_dense")(x)
    out["pre_logits"] = x
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    if not self.num_classes:
      return x, out
    logits = heads.MLPHead(self.num_classes, self.head_hidden,
                           self.dropout_rate, dtype, name="head")(x, train)
    return logits, out
