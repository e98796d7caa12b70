"""Losses and metrics shared by tasks and pretext tasks.

Metrics are dicts of [sum, count] pairs, so they add up across steps,
devices and hosts; a metric's value is sum / count. Losses are normalised by
global counts, so under pmap the per-device losses (and gradients) sum to the
global ones.
"""
import jax
import jax.numpy as jnp
import optax


def global_sum(x: jax.Array, axis_name: str | None) -> jax.Array:
  """Sum over the global batch: a no-op under jit, a psum under pmap."""
  return x if axis_name is None else jax.lax.psum(x, axis_name)


def masked_cross_entropy(logits, labels, mask, axis_name=None):
  """Mean softmax cross-entropy over the examples with mask 1.

  Normalised by the number of masked-in examples of the global batch, so a
  batch with no labeled examples contributes exactly zero, and every device
  of a pmap normalises by the same count. Returns (loss, metrics).
  """
  mask = mask.astype(jnp.float32)
  # Masked-out rows may carry no usable label; a valid index keeps them finite.
  labels = jnp.where(mask > 0, labels, 0)
  ce = optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), labels)
  count = jnp.sum(mask)
  loss_sum = jnp.sum(ce * mask)
  loss = loss_sum / jnp.maximum(global_sum(count, axis_name), 1.0)
  correct = jnp.sum((jnp.argmax(logits, -1) == labels) * mask)
  return loss, {"loss": jnp.stack([loss_sum, count]),
                "accuracy": jnp.stack([correct, count])}
