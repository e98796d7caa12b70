"""A tiny backbone: two strided 3x3 convs with BatchNorm, global pooling."""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class TinyNet(nn.Module):
  """(logits, {'block1', 'block2', 'pre_logits'}); num_classes 0: no head."""
  num_classes: int = 0
  width: int = 8  # Channels of the first conv; the second has twice as many.
  dtype: Any = "float32"
  axis_name: str | None = None

  @staticmethod
  def block_pattern(blocks: int) -> str:
    return f"(conv|norm)[1-{blocks}]/"

  @nn.compact
  def __call__(self, x, train: bool):
    out = {}
    x = x.astype(self.dtype)
    for i, width in enumerate((self.width, 2 * self.width), start=1):
      x = nn.Conv(width, (3, 3), strides=2, dtype=self.dtype,
                  name=f"conv{i}")(x)
      x = nn.BatchNorm(use_running_average=not train, axis_name=self.axis_name,
                       dtype=self.dtype, name=f"norm{i}")(x)
      out[f"block{i}"] = x = nn.relu(x)
    out["pre_logits"] = x = jnp.mean(x, axis=(1, 2))
    if not self.num_classes:
      return x, out
    return nn.Dense(self.num_classes, name="head")(x).astype(jnp.float32), out


Model = TinyNet
