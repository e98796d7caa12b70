"""Heads put on top of a backbone's features, and how a task declares them."""
from typing import Any, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.models import layers


class HeadSpec(NamedTuple):
  """A head a task needs; `multihead` builds one `MLPHead` per spec.

  outputs: output units.
  groups: the input groups it may read, in order of preference; it reads the
    first one present (a task may route its class head to the unrotated rows
    of a pretext's group, while a plain batch arrives as group 'image').
  hidden: hidden Dense-ReLU-Dropout layers.
  concat: features of that many consecutive examples are joined into one row
    (jigsaw: the tiles of one puzzle).
  stop_gradient: the head reads stop_gradient(features): an online probe
    that shows representation quality without shaping the backbone.
  shares: the name of an earlier head whose layers this one applies to its
    own group (a method that reads the class head on its views); its
    `outputs` and `hidden` must be that head's.
  module: a head of the task's own instead of the MLP (pretext.Head.module).
  """
  outputs: int
  groups: tuple[str, ...] = ("image",)
  hidden: tuple[int, ...] = ()
  concat: int = 1
  stop_gradient: bool = False
  shares: str | None = None
  module: Any = None


def pooled_output(x, intermediates: dict, num_classes: int,
                  dropout_rate: float, train: bool, dtype):
  """The end of a convolutional backbone, inside its compact `__call__`:
  global average pooling (`pre_logits`), dropout, then a linear class
  layer `head`; with `num_classes=0` the pooled features instead.
  Returns (outputs, intermediates)."""
  x = x.mean(axis=(1, 2))
  intermediates["pre_logits"] = x
  x = nn.Dropout(dropout_rate, deterministic=not train)(x)
  if not num_classes:
    return x, intermediates
  return MLPHead(num_classes, dtype=dtype, name="head")(x, train), intermediates


class MLPHead(nn.Module):
  """Optional hidden Dense-ReLU-Dropout layers, then a linear output layer.

  `dtype`: computation dtype of the layers (None: the input's); the outputs
  are float32 whatever it is, so losses and softmaxes run in float32.
  """
  num_outputs: int
  hidden: Sequence[int] = ()
  dropout_rate: float = 0.0
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    for i, units in enumerate(self.hidden):
      x = nn.relu(layers.Dense(units, dtype=self.dtype,
                               name=f"hidden{i}")(x))
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    out = layers.Dense(self.num_outputs, dtype=self.dtype, name="out")(x)
    return out.astype(jnp.float32)
