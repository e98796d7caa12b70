"""A small ResNet for 32x32 images: a stronger backbone that still trains in
hours on a 2-core CPU.

Stem conv, then stages of basic residual blocks (two 3x3 convs, He et al.
2016), each stage halving the resolution. By default every stage
downsamples (the first one too, unlike CIFAR ResNet-20) so the default costs ~13 M
multiply-adds per image, ~5x the seeds' core CNN, with ~0.3 M parameters.
Module names (`conv0`/`norm0` stem, `stage{i}_{j}` blocks) let a fine-tuning
regex freeze the first stages.
"""
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax

from ssl_jax.models import heads
from ssl_jax.models import layers
from ssl_jax.models import norms


class BasicBlock(nn.Module):
  features: int
  strides: int
  norm: callable
  lowering: str = "auto"
  dtype: Any = None  # Computation dtype of the convolutions.

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(layers.Conv, use_bias=False, dtype=self.dtype,
                             lowering=self.lowering)
    s = (self.strides, self.strides)
    y = conv(self.features, (3, 3), s, name="conv1")(x)
    y = nn.relu(self.norm(name="norm1")(y))
    y = conv(self.features, (3, 3), name="conv2")(y)
    y = self.norm(name="norm2")(y)
    if x.shape != y.shape:  # Projection shortcut where the shape changes.
      x = conv(self.features, (1, 1), s, name="shortcut_conv")(x)
      x = self.norm(name="shortcut_norm")(x)
    return nn.relu(x + y)


class ResNet(norms.NormedModel):
  """Backbone + head; `num_classes=0` returns the pooled features instead."""
  num_classes: int = 0
  stem_features: int = 32
  features: Sequence[int] = (32, 64, 128)  # Channels of each stage.
  stage_sizes: Sequence[int] = (1, 1, 1)  # Residual blocks per stage.
  dropout_rate: float = 0.0  # Before the head.
  # Stride of the first stage; 1 with 64-channel stages (2, 2, 2, 2) is the
  # CIFAR ResNet-18 of solo-learn and lightly.
  first_stride: int = 2

  @staticmethod
  def block_pattern(blocks: int) -> str:
    """The stem and the first `blocks` stages (for freezing them)."""
    return f"((conv|norm)0/|stage[1-{blocks}]_)"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool):
    norm, dtype = self.norm_layer(train), self.compute_dtype
    x = layers.Conv(self.stem_features, (3, 3), use_bias=False, name="conv0",
                    dtype=dtype, lowering=self.conv_lowering)(x)
    x = nn.relu(norm(name="norm0")(x))
    out = {"stem": x}
    for i, (f, n) in enumerate(zip(self.features, self.stage_sizes)):
      for j in range(n):
        stride = (self.first_stride if i == 0 else 2) if j == 0 else 1
        x = BasicBlock(f, stride, norm, self.conv_lowering,
                       dtype, name=f"stage{i + 1}_{j}")(x)
      out[f"block{i + 1}"] = x
    return heads.pooled_output(x, out, self.num_classes, self.dropout_rate,
                               train, dtype)
