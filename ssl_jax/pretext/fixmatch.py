"""FixMatch (Sohn et al. 2020): consistency between a weak and a strong view.

The weak view of each image is the batch as cropped and flipped (the class
head already reads it); the strong view is that image through RandAugment
and Cutout (ssl_jax/data/randaugment.py), made here on the device. Where
the class head's top probability on the weak view reaches `threshold`, its
argmax is the pseudo-label the strong view is trained to (no gradient
through the guess):
  L_u = 1/|U| sum_{u in U} 1[max p(u) >= tau] H(argmax p(u), p(A(u)))
over the unlabeled images U of the step; with the class loss and any
pretext tasks the run's loss is w_cls L_cls + w_u L_u + sum_k w_k L_k
(ssl_jax/tasks/pretext_mix.py). Pseudo-labels come from the model only;
the true labels of unlabeled images feed the `pseudo_precision` metric.
Labeled images get strong views too (a batch's rows are not known to be
labeled until the loss), 1 / (1 + mu) of the strong views, unused.
"""
import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssl_jax import losses
from ssl_jax import pretext
from ssl_jax.data import randaugment


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.weight = 1.0  # w_u: weight of the unlabeled loss (FixMatch: 1).
  c.threshold = 0.95  # tau: top class probability a pseudo-label needs.
  c.num_ops = 2  # RandAugment ops per strong view (FixMatch: 2).
  c.cutout = 0.5  # Cutout square's largest side, as a fraction of the width.
  return c


def spec(cfg) -> pretext.Spec:
  del cfg
  return pretext.Spec(pretext.Head(0), reads_class_head=True)


def transform(cfg, images, rng, train) -> pretext.Views:
  """Strong views of the batch; none at evaluation, whose metrics come from
  the class head's view alone."""
  b = images.shape[0]
  if not train:
    return pretext.Views(images[:0], None, jnp.zeros((0,), jnp.int32))
  pixels = images if images.dtype == jnp.uint8 else jnp.clip(
      jnp.round(images), 0, 255).astype(jnp.uint8)
  strong = randaugment.randaugment(rng, pixels, cfg.num_ops, cfg.cutout)
  return pretext.Views(strong, None, jnp.arange(b, dtype=jnp.int32))


def pseudo_labels(class_logits, threshold):
  """(guess, confident): the class head's argmax and where its softmax
  probability reaches `threshold`, both from logits without gradient."""
  probs = jax.nn.softmax(jax.lax.stop_gradient(class_logits), -1)
  return probs.argmax(-1), probs.max(-1) >= threshold


def loss(cfg, outputs, views, mask, axis_name=None, *, class_logits, labeled,
         labels):
  """L_u normalised by the step's unlabeled count, and metrics:
  'loss', 'mask_rate' (share of unlabeled images with a pseudo-label) and
  'pseudo_precision' (share of those guesses that are right). At evaluation
  (no strong views) the rates are over the split's images."""
  del views
  guess, confident = pseudo_labels(class_logits, cfg.threshold)
  if outputs.shape[0]:  # Training: the unlabeled images' strong views.
    pool = mask * (1.0 - labeled)
    ce = optax.softmax_cross_entropy_with_integer_labels(outputs, guess)
    loss_sum = jnp.sum(ce * confident * pool)
  else:  # Evaluation: `labeled` marks the split's valid images.
    pool, loss_sum = labeled, jnp.zeros(())
  keep = confident * pool
  count = jnp.sum(pool)
  value = loss_sum / jnp.maximum(losses.global_sum(count, axis_name), 1.0)
  right = jnp.sum((guess == labels) * keep)
  return value, {"loss": jnp.stack([loss_sum, count]),
                 "mask_rate": jnp.stack([jnp.sum(keep), count]),
                 "pseudo_precision": jnp.stack([right, jnp.sum(keep)])}
