"""Image preprocessing and augmentation, run inside jitted steps.

Images stay uint8 on the device; these functions turn a batch into scaled
floats and draw random crops, flips and affine warps from a key, so
augmentation costs no host work and follows the config's seed.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp

# The per-channel pixel statistics (of [0, 1] RGB) that ImageNet models such
# as the official Keras EfficientNet weights were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite's (TF efficientnet_lite_builder.py): (pixels - 127) / 128.
LITE_MEAN = (127 / 255,) * 3
LITE_STD = (128 / 255,) * 3


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


class AffineParams(NamedTuple):
  """Per-example warp and brightness for `affine`, each a (B,) float array.

  angle: radians, counter-clockwise: +pi/2 turns an image as `np.rot90` does.
  zoom: magnification about the centre: 2 shows the middle half, enlarged.
  shift_y, shift_x: pixels the content moves down / right, after the turn and
    zoom, along the output's axes.
  brightness: factor on the pixel values.
  """
  angle: jax.Array
  zoom: jax.Array
  shift_y: jax.Array
  shift_x: jax.Array
  brightness: jax.Array


def cut_patches(images: jax.Array, corners: jax.Array, size: int,
                resize_to: int = 0) -> jax.Array:
  """(B, H, W, C) images, (B, T, 2) int top-left (row, column) corners ->
  (B * T, size, size, C) patches, example-major; with `resize_to` > 0 each
  patch resized (bilinear, float32) to resize_to x resize_to."""
  b, t = corners.shape[:2]
  channels = images.shape[-1]

  def cut(image, corner):
    return jax.lax.dynamic_slice(image, (corner[0], corner[1], 0),
                                 (size, size, channels))

  patches = jax.vmap(jax.vmap(cut, (None, 0)))(images, corners)
  patches = patches.reshape((b * t, size, size, channels))
  if resize_to:
    patches = jax.image.resize(patches.astype(jnp.float32),
                               (b * t, resize_to, resize_to, channels),
                               "bilinear")
  return patches


def _source_matrices(params: AffineParams, height: int,
                     width: int) -> jax.Array:
  """(B, 2, 3): output (row, col, 1) -> the (row, col) it samples.

  The content is zoomed and turned about the centre c, then shifted by t, so
  output point p samples c + R(-angle) (p - c - t) / zoom. Rows point down,
  which flips the sign of sin against the textbook (x, y) matrix.
  """
  cos, sin = jnp.cos(params.angle), jnp.sin(params.angle)
  linear = jnp.stack([jnp.stack([cos, sin], -1), jnp.stack([-sin, cos], -1)],
                     -2) / params.zoom[:, None, None]
  centre = jnp.array([(height - 1) / 2, (width - 1) / 2], jnp.float32)
  moved = centre + jnp.stack([params.shift_y, params.shift_x], -1)
  # Elementwise rather than a matmul: exact float32 on every backend, so the
  # identity warp samples exactly the grid points.
  offset = centre - (linear * moved[:, None, :]).sum(-1)
  return jnp.concatenate([linear, offset[:, :, None]], -1)


def _bilinear(image: jax.Array, rows: jax.Array, cols: jax.Array):
  """Samples an (H, W, C) float image at (H', W') float positions.

  Fill mode "nearest" (Keras ImageDataGenerator's default, which the seeds
  used): points outside repeat the edge pixel. A constant fill would put
  dark corners on exactly the augmented copies, all of minority classes, a
  cue a classifier could learn instead of the class.
  """
  sample = lambda channel: jax.scipy.ndimage.map_coordinates(
      channel, (rows, cols), order=1, mode="nearest")
  return jax.vmap(sample, in_axes=2, out_axes=2)(image)


def affine(images: jax.Array, params: AffineParams) -> jax.Array:
  """Warps each image by its own rotation, zoom and shift, then brightness.

  One affine map per image, sampled bilinearly in float32. Brightness
  multiplies the values and clips them to the valid range: [0, 255] for
  uint8 (more generally [0, max] for integer dtypes), [0, 1] for floats
  (images as `to_float` gives them before standardising). Returns the input
  dtype, rounded for integers, so uint8 batches stay uint8 for `to_float`.
  """
  _, h, w, _ = images.shape
  m = _source_matrices(params, h, w)[:, :, :, None, None]
  rows = jnp.arange(h, dtype=jnp.float32)[:, None]
  cols = jnp.arange(w, dtype=jnp.float32)[None, :]
  src_rows = m[:, 0, 0] * rows + m[:, 0, 1] * cols + m[:, 0, 2]
  src_cols = m[:, 1, 0] * rows + m[:, 1, 1] * cols + m[:, 1, 2]
  x = jax.vmap(_bilinear)(images.astype(jnp.float32), src_rows, src_cols)
  is_int = jnp.issubdtype(images.dtype, jnp.integer)
  top = jnp.iinfo(images.dtype).max if is_int else 1.0
  x = jnp.clip(x * params.brightness[:, None, None, None], 0, top)
  return (jnp.round(x) if is_int else x).astype(images.dtype)


def draw_params(rng: jax.Array, num: int, height: int, width: int,
                max_degrees, max_shift, brightness_range,
                zoom_range) -> AffineParams:
  """Uniform parameters as Keras ImageDataGenerator draws them.

  Angle in [-max_degrees, max_degrees], shifts up to `max_shift` times the
  height / width (in pixels, not rounded), brightness and zoom factors in
  their (lo, hi) ranges. One zoom for both axes, so images keep their shape.
  """
  keys = jax.random.split(rng, 5)
  uniform = lambda key, lo, hi: jax.random.uniform(key, (num,), jnp.float32,
                                                   lo, hi)
  return AffineParams(
      angle=jnp.deg2rad(uniform(keys[0], -max_degrees, max_degrees)),
      zoom=uniform(keys[1], *zoom_range),
      shift_y=uniform(keys[2], -max_shift, max_shift) * height,
      shift_x=uniform(keys[3], -max_shift, max_shift) * width,
      brightness=uniform(keys[4], *brightness_range))


def random_affine(rng: jax.Array, images: jax.Array, max_degrees, max_shift,
                  brightness_range, zoom_range) -> jax.Array:
  """`affine` with parameters drawn per image by `draw_params`.

  The seeds' class-imbalance experiment used max_degrees=30, max_shift=0.2
  and brightness and zoom ranges (0.85, 1.15).
  """
  b, h, w, _ = images.shape
  return affine(images, draw_params(rng, b, h, w, max_degrees, max_shift,
                                    brightness_range, zoom_range))
