"""Exemplar pretext (Dosovitskiy et al. 2014, as S4L-Exemplar uses it).

Every image becomes `copies` random augmentations of itself; the head embeds
them, and the loss pulls an image's copies together and pushes the copies of
other images apart: SimCLR's NT-Xent, or S4L's batch-hard triplet loss.

Views are example-major: row r is copy r % V of batch image r // V (V =
`copies`), so an image's copies stay on the device that holds the image when
the batch is sharded. Copies are float32 on the 0-255 scale, clipped to
[0, 255]. Augmentation and loss run on the device, inside jitted code.
"""
import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax import losses
from ssl_jax import pretext
from ssl_jax.data import augment
from ssl_jax.data import view_augment

# Logit of an excluded candidate: finite, so an anchor without candidates
# keeps finite values and gradients, yet exp() of it is exactly zero.
_EXCLUDED = -1e9


MARGIN = 0.5  # The triplet loss's default margin.


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.weight = 1.0  # w_ex: weight of the exemplar loss.
  c.copies = 2  # V: augmented copies per image; >= 2, so each has a positive.
  c.loss = "nt_xent"  # 'nt_xent' (SimCLR) or 'triplet' (S4L's batch-hard).
  c.temperature = 0.5  # NT-Xent: softmax temperature on cosine similarities.
  # loss='triplet' reads `margin` between distances of unit embeddings
  # (MARGIN where the config has no such field).
  c.embed_dim = 128  # Head outputs: the embedding the loss compares.
  c.head_hidden = (256,)  # Hidden layers of the projection MLP.
  # Zero-pad each copy by this many pixels, crop back at a random integer
  # offset (augment.random_crop); 0 = no crop.
  c.crop_padding = 4
  c.flip = True  # Mirror each copy left-right with probability 1/2.
  # Strength s: brightness, contrast and saturation factors drawn per copy,
  # uniform in [max(0, 1 - s), 1 + s], applied in that order; 0 = off.
  c.color_jitter = 0.4
  c.grayscale_prob = 0.2  # Chance a copy turns grey (after the jitter).
  return c


def spec(cfg) -> pretext.Spec:
  return pretext.Spec(pretext.Head(cfg.embed_dim, tuple(cfg.head_hidden)))


def transform(cfg, images, rng, train) -> pretext.Views:
  """(B, H, W, C) images -> B * V augmented copies, example-major.

  'target' and 'source' are both the copy's batch image index: rows with
  the same target are positives. Evaluation (rng None) draws from the fixed
  key 0, so its copies and losses are deterministic.
  """
  if cfg.copies < 2:
    raise ValueError(f"pretext.exemplar.copies must be >= 2 (each copy needs "
                     f"a positive), got {cfg.copies}.")
  if not train:
    rng = jax.random.key(0)
  source = jnp.repeat(jnp.arange(images.shape[0], dtype=jnp.int32),
                      cfg.copies)
  return pretext.Views(augment_copies(cfg, rng, images), source, source)


def augment_copies(cfg, rng, images) -> jax.Array:
  """`cfg.copies` independent augmentations of each image, example-major.

  Crop, flip, colour jitter, grayscale, each drawn per copy. Returns float32
  (B * V, H, W, C) on the 0-255 scale, within [0, 255]. Disabled steps are
  skipped, so crop and flip alone move pixel values exactly.
  """
  x = jnp.repeat(images.astype(jnp.float32), cfg.copies, axis=0)
  n = x.shape[0]
  crop_rng, flip_rng, jitter_rng, gray_rng = jax.random.split(rng, 4)
  x = augment.random_crop(crop_rng, x, cfg.crop_padding)
  if cfg.flip:
    x = augment.random_flip(flip_rng, x)
  s = cfg.color_jitter
  if s > 0:
    factors = jax.random.uniform(jitter_rng, (3, n), jnp.float32,
                                 max(0.0, 1.0 - s), 1.0 + s)
    x = view_augment.adjust_colors(x, *factors)
  if cfg.grayscale_prob > 0:
    grey = jax.random.bernoulli(gray_rng, cfg.grayscale_prob, (n,))
    x = jnp.where(grey[:, None, None, None], view_augment.grayscale(x), x)
  return x


def loss(cfg, outputs, views, mask, axis_name=None):
  """NT-Xent or batch-hard triplet loss over the (global) batch of copies.

  Rows with mask 0 take no part, neither as anchors nor as candidates. An
  anchor is a valid row with at least one valid positive (another valid row
  of the same target); only anchors count in the loss and metrics. Under
  pmap, the local anchors are compared with every device's rows, and the
  sum is normalised by the global anchor count, so per-device losses (and
  psummed gradients) add up to the single-device ones. Returns (loss,
  {'loss': [sum, count], 'accuracy': [correct, count]}), where an anchor is
  correct if its nearest other valid row (by cosine) is a positive.
  """
  mask = mask > 0
  # Zeroing padding rows first keeps garbage there (even NaN) out of the
  # similarities and their gradients.
  z = unit(jnp.where(mask[:, None], outputs.astype(jnp.float32), 0.0))
  n = z.shape[0]
  start = 0 if axis_name is None else jax.lax.axis_index(axis_name) * n
  # Targets are local image indices: shifting them by the device's first row
  # keeps the images of different devices apart.
  target = views.target + start
  gather = lambda x: (x if axis_name is None else
                      jax.lax.all_gather(x, axis_name, tiled=True))
  all_z, all_target, all_mask = gather(z), gather(target), gather(mask)
  # Full float32: TPU / TF32 matmuls would blur sim near 1, where the
  # triplet's 2 - 2 sim cancels; the loss's matmul is tiny anyway.
  sim = jnp.matmul(z, all_z.T, precision=jax.lax.Precision.HIGHEST)
  not_self = (jnp.arange(all_z.shape[0])[None, :] !=
              (start + jnp.arange(n))[:, None])
  candidate = mask[:, None] & all_mask[None, :] & not_self
  positive = candidate & (target[:, None] == all_target[None, :])
  anchor = positive.any(axis=1)
  if cfg.loss == "nt_xent":
    per_anchor = _nt_xent(sim, candidate, positive, cfg.temperature)
  elif cfg.loss == "triplet":
    per_anchor = _batch_hard_triplet(sim, candidate, positive,
                                     cfg.get("margin", MARGIN))
  else:
    raise ValueError(f"pretext.exemplar.loss must be 'nt_xent' or 'triplet', "
                     f"got {cfg.loss!r}.")
  loss_sum = jnp.sum(jnp.where(anchor, per_anchor, 0.0))
  count = jnp.sum(anchor.astype(jnp.float32))
  nearest = jnp.argmax(jnp.where(candidate, sim, -jnp.inf), axis=1)
  hit = jnp.take_along_axis(positive, nearest[:, None], axis=1)[:, 0]
  correct = jnp.sum((anchor & hit).astype(jnp.float32))
  total = loss_sum / jnp.maximum(losses.global_sum(count, axis_name), 1.0)
  return total, {"loss": jnp.stack([loss_sum, count]),
                 "accuracy": jnp.stack([correct, count])}


def unit(x: jax.Array) -> jax.Array:
  """Rows scaled to unit L2 norm; zero rows stay zero."""
  norm2 = jnp.sum(x * x, axis=-1, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(norm2, 1e-12))


def _nt_xent(sim, candidate, positive, temperature):
  """-mean over positives of log softmax(sim / T) over the candidates.

  With two copies per image, exactly SimCLR's NT-Xent; with more, every
  positive's log-probability is averaged (SupCon's L_out).
  """
  logits = jnp.where(candidate, sim / temperature, _EXCLUDED)
  log_p = jax.nn.log_softmax(logits, axis=1)
  num_positive = jnp.sum(positive, axis=1)
  return (-jnp.sum(jnp.where(positive, log_p, 0.0), axis=1) /
          jnp.maximum(num_positive, 1))


def _batch_hard_triplet(sim, candidate, positive, margin):
  """relu(margin + farthest positive - nearest negative), Euclidean.

  Distances of unit vectors from their cosine: |a - b|^2 = 2 - 2 a.b. The
  floor keeps sqrt's gradient finite at coinciding embeddings. Without any
  negative, the nearest is infinitely far and the loss zero.
  """
  dist = jnp.sqrt(jnp.maximum(2.0 - 2.0 * sim, 1e-12))
  farthest_positive = jnp.max(jnp.where(positive, dist, 0.0), axis=1)
  nearest_negative = jnp.min(jnp.where(candidate & ~positive, dist, jnp.inf),
                             axis=1)
  return jax.nn.relu(margin + farthest_positive - nearest_negative)
