"""Wide ResNet (Zagoruyko & Komodakis 2016) as FixMatch and USB use it.

WRN-`depth`-`widen_factor`: a 3x3 stem conv to 16 channels, then 3 groups
of (depth - 4) / 6 pre-activation basic blocks (norm, leaky ReLU, 3x3 conv,
twice) with 16k, 32k and 64k channels (k = widen_factor), strides 1, 2, 2;
a 1x1 projection where a block changes the shape; a final norm and leaky
ReLU, global average pooling, the class layer. The first block of the first
group applies its norm and activation before the shortcut too, as in
FixMatch's code. WRN-28-2 on CIFAR-10: 1,467,610 parameters. FixMatch's
BatchNorm momentum is 0.999 in our convention (`norm_momentum`, the weight of
the running average), its leaky ReLU slope 0.1.
"""
import functools
from typing import Any

import flax.linen as nn
import jax

from ssl_jax.models import heads
from ssl_jax.models import layers
from ssl_jax.models import norms


class Block(nn.Module):
  """A pre-activation basic block."""
  features: int
  strides: int
  norm: Any
  slope: float
  activate_shortcut: bool = False  # The shortcut reads the activated input.
  lowering: str = "auto"
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(layers.Conv, use_bias=False, dtype=self.dtype,
                             lowering=self.lowering)
    act = lambda y: nn.leaky_relu(y, self.slope)
    s = (self.strides, self.strides)
    y = act(self.norm(name="norm1")(x))
    if self.activate_shortcut:
      x = y
    y = conv(self.features, (3, 3), s, name="conv1")(y)
    y = act(self.norm(name="norm2")(y))
    y = conv(self.features, (3, 3), name="conv2")(y)
    if x.shape != y.shape:
      x = conv(self.features, (1, 1), s, name="shortcut")(x)
    return x + y


class WideResNet(norms.NormedModel):
  """Backbone + class layer; `num_classes=0` returns the pooled features."""
  num_classes: int = 0
  depth: int = 28  # 6n + 4 layers with weights.
  widen_factor: int = 2  # k: channels 16k, 32k, 64k.
  leaky_slope: float = 0.1  # Of every leaky ReLU.
  norm_momentum: float = 0.999  # FixMatch's BatchNorm momentum (0.001).
  dropout_rate: float = 0.0  # Before the class layer.

  @staticmethod
  def block_pattern(blocks: int) -> str:
    """The stem and the first `blocks` groups (for freezing them)."""
    return f"(conv0/|group[1-{blocks}]_)"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool):
    if (self.depth - 4) % 6:
      raise ValueError(f"WideResNet depth must be 6n + 4, got {self.depth}.")
    blocks = (self.depth - 4) // 6
    norm, dtype = self.norm_layer(train), self.compute_dtype
    x = layers.Conv(16, (3, 3), use_bias=False, name="conv0", dtype=dtype,
                    lowering=self.conv_lowering)(x)
    out = {"stem": x}
    for g, (width, stride) in enumerate(zip((16, 32, 64), (1, 2, 2))):
      for j in range(blocks):
        x = Block(width * self.widen_factor, stride if j == 0 else 1, norm,
                  self.leaky_slope, activate_shortcut=g == 0 and j == 0,
                  lowering=self.conv_lowering, dtype=dtype,
                  name=f"group{g + 1}_{j}")(x)
      out[f"block{g + 1}"] = x
    x = nn.leaky_relu(norm(name="norm")(x), self.leaky_slope)
    return heads.pooled_output(x, out, self.num_classes, self.dropout_rate,
                               train, dtype)


Model = WideResNet
