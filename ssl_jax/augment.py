"""Image preprocessing and augmentation, run inside jitted steps.

Images stay uint8 on the device; these functions turn a batch into scaled
floats and draw random crops and flips from a key, so augmentation costs no
host work and follows the config's seed.
"""
import jax
import jax.numpy as jnp


def to_float(images: jax.Array, mean=None, std=None) -> jax.Array:
  """uint8 images -> float32 in [0, 1], then standardised if mean/std given."""
  x = images.astype(jnp.float32) / 255.0
  if mean is not None:
    x = (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)
  return x


def random_crop(rng: jax.Array, images: jax.Array, padding: int) -> jax.Array:
  """Pads each image by `padding` zeros and crops it back at a random offset."""
  if padding <= 0:
    return images
  b, h, w, c = images.shape
  padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding),
                            (0, 0)))
  offsets = jax.random.randint(rng, (b, 2), 0, 2 * padding + 1)
  crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, c))
  return jax.vmap(crop)(padded, offsets)


def random_flip(rng: jax.Array, images: jax.Array) -> jax.Array:
  """Mirrors each image left-right with probability 1/2."""
  flip = jax.random.bernoulli(rng, 0.5, images.shape[:1])
  return jnp.where(flip[:, None, None, None], images[:, :, ::-1], images)


def augment(rng: jax.Array, images: jax.Array, crop_padding: int,
            flip: bool) -> jax.Array:
  """The standard CIFAR augmentation: random crop with padding, flip."""
  crop_rng, flip_rng = jax.random.split(rng)
  images = random_crop(crop_rng, images, crop_padding)
  return random_flip(flip_rng, images) if flip else images
