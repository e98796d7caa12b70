"""Projection heads of self-supervised methods (BYOL, DINO): MLPs whose
hidden layers may carry BatchNorm, and DINO's weight-normalised prototype
layer. Biases and BatchNorm statistics stay float32 (`layers.Dense`)."""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.models import layers

ACTIVATIONS = {"relu": nn.relu, "gelu": nn.gelu}


class MLP(nn.Module):
  """`len(hidden)` Dense-[BatchNorm]-activation layers, then a linear
  `outputs` layer (BYOL's projector and predictor: one hidden layer with
  BatchNorm and ReLU; DINO's: two with GELU)."""
  hidden: tuple[int, ...]
  outputs: int
  batch_norm: bool = True
  activation: str = "relu"
  out_bias: bool = True  # False where a BatchNorm follows (it would cancel).
  dtype: Any = None
  axis_name: str | None = None  # pmap axis: BatchNorm over all devices.

  @nn.compact
  def __call__(self, x, train: bool):
    for i, units in enumerate(self.hidden):
      x = layers.Dense(units, use_bias=not self.batch_norm, dtype=self.dtype,
                       name=f"hidden{i}")(x)
      if self.batch_norm:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                         axis_name=self.axis_name, dtype=self.dtype,
                         name=f"norm{i}")(x)
      x = ACTIVATIONS[self.activation](x)
    return layers.Dense(self.outputs, use_bias=self.out_bias,
                        dtype=self.dtype, name="out")(x)


class Prototypes(nn.Module):
  """DINO's last layer: unit-norm features times unit-norm prototype
  columns (weight normalisation with the gain fixed at 1), no bias: each
  output is a cosine similarity."""
  num: int

  @nn.compact
  def __call__(self, x):
    x = x.astype(jnp.float32)
    v = self.param("kernel", nn.initializers.truncated_normal(0.02),
                   (x.shape[-1], self.num), jnp.float32)
    unit = lambda a, axis: a * jax.lax.rsqrt(
        jnp.maximum(jnp.sum(a * a, axis=axis, keepdims=True), 1e-12))
    return unit(x, -1) @ unit(v, 0)
