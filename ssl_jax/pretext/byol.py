"""BYOL (Grill et al. 2020): an online network predicts a momentum
teacher's projection of another view of the same image.

Each image gives two views (ssl_jax/data/view_augment.py; BYOL's
asymmetric blur and solarisation). The online branch is backbone ->
projector -> predictor, the teacher (pretext/momentum.py) backbone ->
projector, its weights the online ones' moving average with momentum
rising from `momentum` to 1. The loss of an image is symmetric:
  ||q(v1) - z'(v2)||^2 + ||q(v2) - z'(v1)||^2,
with q and z' scaled to unit length (2 - 2 cosine each), averaged over the
images. Views are view-major: row r is view r // B of batch image r % B.
Metrics: 'loss', and 'projection_std' (the std of the unit projections
per dimension, times sqrt(dim): ~1 for spread-out features, 0 when they
collapse to one point).
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
from ssl_jax.pretext import exemplar
from ssl_jax.pretext import momentum


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.weight = 1.0  # Weight of the BYOL loss.
  c.momentum = 0.99  # Teacher momentum at the start; cosine to 1 (BYOL).
  c.hidden = 1024  # Projector and predictor hidden width (BYOL: 4096).
  c.dim = 128  # Projection width (BYOL: 256).
  # The two views: BYOL's asymmetric solarisation (0 / 0.2); its blur
  # (1.0 / 0.1) is off on CIFAR-10, as in solo-learn's recipe.
  c.views = view_augment.config(solarize_prob=(0.0, 0.2))
  return c


class Head(nn.Module):
  """{'projection': z, 'prediction': q(z)}; the teacher reads z."""
  hidden: int
  dim: int
  dtype: object = None
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x, train: bool):
    mlp = functools.partial(projection.MLP, (self.hidden,), self.dim,
                            dtype=self.dtype, axis_name=self.axis_name)
    # No bias on z: the predictor's BatchNorm would cancel it, so its
    # gradient is 0 up to rounding, which Adam would blow up to steps.
    z = mlp(out_bias=False, name="projector")(x, train)
    return {"projection": z, "prediction": mlp(name="predictor")(z, train)}


def spec(cfg) -> pretext.Spec:
  return pretext.Spec(pretext.Head(cfg.dim, module=functools.partial(
      Head, cfg.hidden, cfg.dim)))


def transform(cfg, images, rng, train) -> pretext.Views:
  """Two views of each image, view-major; evaluation draws from key 0."""
  b = images.shape[0]
  source = jnp.tile(jnp.arange(b, dtype=jnp.int32), 2)
  views = view_augment.views(cfg.views, rng if train else jax.random.key(0),
                             images, 2)
  return pretext.Views(views, source, source)


def init_state(cfg, variables):
  del cfg
  return momentum.init_state(variables)


def update_state(cfg, state, update):
  return momentum.update_state(cfg.momentum, state, update)


def teacher(cfg, state):
  del cfg
  return state["teacher"]


def loss(cfg, outputs, views, mask, axis_name=None, *, state,
         teacher_outputs):
  """The symmetric loss, normalised by the global count of valid images."""
  del cfg, views, state
  q = exemplar.unit(outputs["prediction"])
  z = exemplar.unit(teacher_outputs["projection"])
  b = q.shape[0] // 2
  other = jnp.roll(z, b, axis=0)  # Row r's teacher target: the other view.
  per_row = 2.0 - 2.0 * jnp.sum(q * other, -1)
  loss_sum = jnp.sum(per_row * mask)
  count = jnp.sum(mask[:b])
  value = loss_sum / jnp.maximum(losses.global_sum(count, axis_name), 1.0)
  return value, {"loss": jnp.stack([loss_sum, count]),
                 "projection_std": spread(outputs["projection"], mask,
                                          axis_name)}


def spread(z, mask, axis_name=None) -> jax.Array:
  """[sum, count] of std(unit z) * sqrt(dim) over the valid rows (all
  devices): the collapse monitor of solo-learn and SimSiam."""
  u = exemplar.unit(z) * mask[:, None]
  n = jnp.maximum(losses.global_sum(jnp.sum(mask), axis_name), 1.0)
  mean = losses.global_sum(jnp.sum(u, 0), axis_name) / n
  var = losses.global_sum(jnp.sum((u - mean) ** 2 * mask[:, None], 0),
                          axis_name) / n
  value = jnp.mean(jnp.sqrt(var)) * jnp.sqrt(z.shape[-1] * 1.0)
  share = 1.0 / losses.global_sum(1.0, axis_name)
  return jnp.stack([value * share, share])
