"""A method with state of its own: an EMA teacher of the backbone.

The teacher starts at the backbone's parameters and moves to momentum *
teacher + (1 - momentum) * backbone after every optimizer step; its loss is
rotation prediction (one random angle per image), and it reports the
teacher's squared norm, read from its state.
"""
import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax import pretext
from ssl_jax.pretext import rotation


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.weight = 1.0  # Weight of its rotation loss.
  c.momentum = 0.9  # Of the teacher's moving average.
  return c


def spec(cfg) -> pretext.Spec:
  del cfg
  return pretext.Spec(pretext.Head(rotation.NUM_ROTATIONS))


def transform(cfg, images, rng, train) -> pretext.Views:
  del cfg
  b = images.shape[0]
  if train:
    rotated, k = rotation.random_rotations(rng, images)
  else:  # Deterministic: image i turned by i mod 4 quarter turns.
    k = jnp.arange(b, dtype=jnp.int32) % rotation.NUM_ROTATIONS
    rotated = rotation.rotate(images, k)
  return pretext.Views(rotated, k, jnp.arange(b, dtype=jnp.int32))


def init_state(cfg, variables):
  del cfg
  return {"teacher": variables["params"]["backbone"]}


def update_state(cfg, state, update):
  m = cfg.momentum
  return {"teacher": jax.tree.map(lambda t, w: m * t + (1 - m) * w,
                                  state["teacher"],
                                  update.variables["params"]["backbone"])}


def loss(cfg, outputs, views, mask, axis_name=None, *, state):
  value, metrics = pretext.cross_entropy_loss(cfg, outputs, views, mask,
                                              axis_name)
  norm = sum(jnp.sum(t ** 2) for t in jax.tree.leaves(state["teacher"]))
  share = 1.0 if axis_name is None else 1.0 / jax.lax.psum(1.0, axis_name)
  metrics["teacher_norm"] = jnp.stack([norm * share, share])
  return value, metrics
