"""Classification heads put on top of a backbone's features."""
from typing import Sequence

import flax.linen as nn
import jax


class MLPHead(nn.Module):
  """Optional hidden Dense-ReLU-Dropout layers, then a linear output layer."""
  num_outputs: int
  hidden: Sequence[int] = ()
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    for i, units in enumerate(self.hidden):
      x = nn.relu(nn.Dense(units, name=f"hidden{i}")(x))
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.num_outputs, name="out")(x)
