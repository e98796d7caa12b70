"""DINO (Caron et al. 2021): a student matches a momentum teacher's
centred, sharpened distribution over K prototypes across views.

Each image gives 2 global views and `local_crops` smaller ones (multi-crop;
rows view-major: the global views form the method's first group, which
the teacher also sees, the local ones a second group at `local_size`).
Both networks end in DINO's head: an MLP to a bottleneck, then the
weight-normalised prototype layer (ssl_jax/models/projection.py). With
teacher outputs t and the centre c (its state, next to the teacher),
  P_t(g) = softmax((t(g) - c) / teacher_temperature)   (no gradient)
  L = mean over images and pairs (g, v), g global, v != g any view, of
      -sum_k P_t(g)_k log softmax(s(v) / student_temperature)_k
and after each step c <- m c + (1 - m) mean of the teacher's outputs over
the step's global views (all devices). Metrics: 'loss', 'teacher_entropy'
(of P_t, nats: log K when uniform, 0 when one-hot) and 'kl_to_uniform'
of the teacher's mean distribution (0 when every prototype gets used
alike; both watch for DINO's two collapses).
"""
import functools

import jax
import jax.numpy as jnp
import flax.linen as nn
import ml_collections

from ssl_jax import losses
from ssl_jax import pretext
from ssl_jax.data import view_augment
from ssl_jax.models import projection
from ssl_jax.pretext import momentum

GLOBAL_VIEWS = 2


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.weight = 1.0  # Weight of the DINO loss.
  c.momentum = 0.996  # Teacher momentum at the start; cosine to 1 (DINO).
  c.hidden = 1024  # MLP width (DINO: 2048).
  c.bottleneck = 128  # MLP output, before the prototypes (DINO: 256).
  c.prototypes = 2048  # K (DINO: 65536; lightly's CIFAR-10: 2048).
  c.batch_norm = True  # In the MLP (DINO's ResNet-50 and lightly's CIFAR).
  c.student_temperature = 0.1
  c.teacher_temperature = 0.04
  c.center_momentum = 0.9  # Of the centre's moving average.
  # Global views: BYOL's (DINO's global crops: area 0.4-1 with local crops,
  # blur 1.0 / 0.1; on CIFAR-10 lightly keeps 0.08-1 and no blur).
  c.views = view_augment.config(solarize_prob=(0.0, 0.2))
  c.local_crops = 0  # Local views per image (DINO: 6 or 10; 0 = none).
  c.local_size = 16  # Their side in pixels (DINO: 96 of 224).
  c.local_scale = (0.05, 0.4)  # Their crop area fraction range (DINO).
  return c


class Head(nn.Module):
  """MLP -> bottleneck -> prototype logits (cosines)."""
  hidden: int
  bottleneck: int
  prototypes: int
  batch_norm: bool
  dtype: object = None
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x, train: bool):
    x = projection.MLP((self.hidden, self.hidden), self.bottleneck,
                       batch_norm=self.batch_norm, activation="gelu",
                       dtype=self.dtype, axis_name=self.axis_name,
                       name="mlp")(x, train)
    return projection.Prototypes(self.prototypes, name="prototypes")(x)


def spec(cfg) -> pretext.Spec:
  return pretext.Spec(pretext.Head(cfg.prototypes, module=functools.partial(
      Head, cfg.hidden, cfg.bottleneck, cfg.prototypes, cfg.batch_norm)))


def transform(cfg, images, rng, train) -> pretext.Views:
  """(2B global views[, local_crops * B local views]), view-major."""
  b = images.shape[0]
  crops, size, scale = cfg.local_crops, cfg.local_size, tuple(cfg.local_scale)
  if crops and not 0 < size <= images.shape[1]:
    raise ValueError(f"pretext.dino.local_size={size} must be in [1, "
                     f"{images.shape[1]}] (the image side).")
  rng = rng if train else jax.random.key(0)
  global_rng, local_rng = jax.random.split(rng)
  parts = (view_augment.views(cfg.views, global_rng, images, GLOBAL_VIEWS),)
  if crops:  # A second group: the backbone must pool globally (not core_cnn).
    parts += (view_augment.views(cfg.views, local_rng, images, crops,
                                 size=size, scale=scale),)
  n = GLOBAL_VIEWS + crops
  source = jnp.tile(jnp.arange(b, dtype=jnp.int32), n)
  return pretext.Views(parts if len(parts) > 1 else parts[0], source, source)


def init_state(cfg, variables):
  return {**momentum.init_state(variables),
          "center": jnp.zeros((cfg.prototypes,), jnp.float32)}


def update_state(cfg, state, update):
  t = update.teacher
  total = losses.global_sum(jnp.sum(t, 0), update.axis_name)
  count = losses.global_sum(jnp.float32(t.shape[0]), update.axis_name)
  m = cfg.center_momentum
  state = momentum.update_state(cfg.momentum, state, update)
  return {**state, "center": m * state["center"] + (1 - m) * total / count}


def teacher(cfg, state):
  del cfg
  return state["teacher"]


def loss(cfg, outputs, views, mask, axis_name=None, *, state,
         teacher_outputs):
  """Cross-entropy of every student view against each other global view's
  teacher distribution, normalised by the global count of valid images."""
  del views
  b = teacher_outputs.shape[0] // GLOBAL_VIEWS
  n = outputs.shape[0] // b
  p_t = jax.lax.stop_gradient(jax.nn.softmax(
      (teacher_outputs - state["center"]) / cfg.teacher_temperature, -1))
  p_t = p_t.reshape(GLOBAL_VIEWS, b, -1)
  log_s = jax.nn.log_softmax(outputs / cfg.student_temperature, -1)
  log_s = log_s.reshape(n, b, -1)
  # ce[g, v, i]: teacher view g against student view v of image i.
  ce = -jnp.einsum("gik,vik->gvi", p_t, log_s)
  pairs = 1.0 - jnp.eye(GLOBAL_VIEWS, n)  # A view never learns from itself.
  valid = mask[:b]
  per_image = jnp.einsum("gvi,gv->i", ce, pairs) / jnp.sum(pairs)
  loss_sum = jnp.sum(per_image * valid)
  count = jnp.sum(valid)
  value = loss_sum / jnp.maximum(losses.global_sum(count, axis_name), 1.0)
  entropy = -jnp.sum(p_t * jnp.log(jnp.maximum(p_t, 1e-30)), -1)
  entropy_sum = jnp.sum(entropy * valid)
  mean_p = losses.global_sum(jnp.einsum("gik,i->k", p_t, valid), axis_name)
  mean_p = mean_p / jnp.maximum(jnp.sum(mean_p), 1e-30)
  kl = jnp.sum(mean_p * jnp.log(jnp.maximum(mean_p * mean_p.shape[0],
                                            1e-30)))
  share = 1.0 / losses.global_sum(1.0, axis_name)
  return value, {"loss": jnp.stack([loss_sum, count]),
                 "teacher_entropy": jnp.stack(
                     [entropy_sum, GLOBAL_VIEWS * count]),
                 "kl_to_uniform": jnp.stack([kl * share, share])}
