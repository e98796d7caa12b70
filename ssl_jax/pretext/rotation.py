"""Rotation pretext (Gidaris et al. 2018): which of 0/90/180/270 degrees?

Rotation k turns an image counter-clockwise exactly as `np.rot90(image, k)`
does. Everything runs inside jitted code on uint8 or float batches (NHWC,
square images), so a rotation batch costs no host work.
"""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssl_jax import pretext

NUM_ROTATIONS = 4


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.weight = 1.0  # w_rot: weight of the rotation loss.
  # 'all': each image at all four angles (RotNet); its 0-degree copies also
  # feed the class head. 'random': one random angle per image. Evaluation
  # always uses 'all'.
  c.mode = "all"
  c.head_hidden = ()  # Hidden layers of the 4-way head.
  return c


def spec(cfg) -> pretext.Spec:
  return pretext.Spec(pretext.Head(NUM_ROTATIONS, tuple(cfg.head_hidden)),
                      class_rows=cfg.mode == "all")


def transform(cfg, images, rng, train) -> pretext.Views:
  b = images.shape[0]
  if cfg.mode == "all" or not train:
    rotated, k = all_rotations(images)
    return pretext.Views(rotated, k, jnp.repeat(
        jnp.arange(b, dtype=jnp.int32), NUM_ROTATIONS), identity=k == 0)
  if cfg.mode != "random":
    raise ValueError(f"pretext.rotation.mode must be 'all' or 'random', got "
                     f"{cfg.mode!r}.")
  rotated, k = random_rotations(rng, images)
  return pretext.Views(rotated, k, jnp.arange(b, dtype=jnp.int32))


loss = pretext.cross_entropy_loss


def describe(cfg, probabilities) -> str:
  """The angle the head sees in a plain image (0 for an upright one)."""
  del cfg
  k = int(np.argmax(probabilities))
  return (f"rotation {90 * k} degrees counter-clockwise "
          f"({probabilities[k]:.3f})")


def _check_square(images: jax.Array):
  if images.shape[1] != images.shape[2]:
    raise ValueError(f"Rotation needs square images, got {images.shape[1:3]}.")


def _all_four(images: jax.Array) -> jax.Array:
  """(B, H, W, C) -> (B, 4, H, W, C): each image at 0, 90, 180, 270 degrees."""
  _check_square(images)
  return jnp.stack([jnp.rot90(images, k, axes=(1, 2))
                    for k in range(NUM_ROTATIONS)], axis=1)


def all_rotations(images: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Every image in all four rotations, with labels 0-3.

  Example-major order (image 0 at k = 0..3, then image 1, ...), so an
  example's four copies stay on the device that holds the example when the
  batch is sharded. Returns ((4B, H, W, C) images, (4B,) int32 labels).
  """
  b = images.shape[0]
  rotated = _all_four(images).reshape((b * NUM_ROTATIONS,) + images.shape[1:])
  return rotated, jnp.tile(jnp.arange(NUM_ROTATIONS, dtype=jnp.int32), b)


def rotate(images: jax.Array, k: jax.Array) -> jax.Array:
  """Image i turned by k[i] * 90 degrees (k in 0..3).

  One gather of each image's pixels through the permutation of its k, so
  no image is built in the three rotations it does not use.
  """
  _check_square(images)
  b, h, w, c = images.shape
  pixels = np.arange(h * w).reshape(h, w)
  source = np.stack([np.rot90(pixels, r).reshape(-1)
                     for r in range(NUM_ROTATIONS)])  # (4, H*W)
  index = jnp.asarray(source)[k][:, :, None]  # (B, H*W, 1)
  flat = images.reshape(b, h * w, c)
  return jnp.take_along_axis(flat, index, axis=1).reshape(images.shape)


def random_rotations(rng: jax.Array, images: jax.Array):
  """One uniformly random rotation per image: (rotated images, labels)."""
  k = jax.random.randint(rng, images.shape[:1], 0, NUM_ROTATIONS)
  return rotate(images, k), k.astype(jnp.int32)
