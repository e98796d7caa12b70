"""Rotation pretext (Gidaris et al. 2018): images turned by k * 90 degrees.

Rotation k turns an image counter-clockwise exactly as `np.rot90(image, k)`
does. Everything runs inside jitted code on uint8 or float batches (NHWC,
square images), so a rotation batch costs no host work.
"""
import jax
import jax.numpy as jnp
import numpy as np

NUM_ROTATIONS = 4


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
