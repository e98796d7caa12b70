"""Flip agreement: a consistency method that reads the class head.

Each image and its mirror image go through the class head; where its guess
on the image reaches `threshold`, the mirror image is trained to that guess
(FixMatch's loss with a flip as the only augmentation).
"""
import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax import losses
from ssl_jax import pretext


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.weight = 1.0  # Weight of the agreement loss.
  c.threshold = 0.5  # Class probability a guess needs to count.
  return c


def spec(cfg) -> pretext.Spec:
  del cfg
  return pretext.Spec(pretext.Head(0), reads_class_head=True)


def transform(cfg, images, rng, train) -> pretext.Views:
  del cfg, rng, train
  b = images.shape[0]
  source = jnp.arange(b, dtype=jnp.int32)
  return pretext.Views(jnp.concatenate([images, images[:, :, ::-1]]), None,
                       jnp.concatenate([source, source]))


def loss(cfg, outputs, views, mask, axis_name=None, **class_view):
  """Cross-entropy of the mirror rows against the confident guesses (its
  own, so the class head's view of the batch goes unused)."""
  del views, class_view
  n = outputs.shape[0] // 2
  probs = jax.nn.softmax(jax.lax.stop_gradient(outputs[:n]))
  keep = (probs.max(-1) >= cfg.threshold) * mask[:n]
  return losses.masked_cross_entropy(outputs[n:], probs.argmax(-1), keep,
                                     axis_name)
