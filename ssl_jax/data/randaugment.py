"""RandAugment as FixMatch uses it for its strongly augmented views.

FixMatch (Sohn et al. 2020, appendix Table 12, the "RA" variant): each image
draws `num_ops` ops uniformly with replacement, each with its own magnitude
uniform in [0, 1], applies them in order and ends with cutout. The ops follow
PIL (ImageOps, ImageEnhance, Image.transform with nearest sampling), which the
reference code calls image by image on the host; here a uint8 batch is done
at once inside jit, so strong views cost no host work and follow the key.

Every op is one of three kinds: an affine warp (the geometric ops), a blend
with a degenerate image (ImageEnhance) or a per-channel lookup table (the
ImageOps point ops). One op step runs each kind once over the whole batch,
with a per-image parameter that is exactly the identity for images whose op
is of another kind, rather than computing all 14 ops and selecting.

Pixel ops match PIL exactly, except autocontrast, which takes the exact
floor where PIL's float64 is at times one level lower; geometric ops can
differ on pixels whose sample point is within float error of a pixel edge.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp

OPS: tuple[str, ...] = ("identity", "autocontrast", "equalize", "rotate",
                        "solarize", "color", "posterize", "contrast",
                        "brightness", "sharpness", "shear_x", "shear_y",
                        "translate_x", "translate_y")
_INDEX = {name: i for i, name in enumerate(OPS)}
_BLENDS = ("color", "contrast", "brightness", "sharpness")
_LUTS = ("autocontrast", "equalize", "solarize", "posterize")


def _lerp(magnitude: jax.Array, lo: float, hi: float) -> jax.Array:
  """Magnitude in [0, 1] -> the op's parameter in [lo, hi], float32.

  Under jit XLA may fuse this into one FMA, an ulp off two roundings.
  """
  return lo + magnitude * (hi - lo)


def _is(op: jax.Array, name: str, ndim: int) -> jax.Array:
  """(B,) op indices -> bool `op == name`, shaped to broadcast over ndim."""
  return (op == _INDEX[name]).reshape(op.shape + (1,) * (ndim - 1))


def _affine_matrices(op, magnitude, height: int, width: int) -> jax.Array:
  """(B, 6): PIL's AFFINE data (a, b, c, d, e, f) for each image.

  Output point (x, y) samples input (a x + b y + c, d x + e y + f), x right
  and y down as in PIL. Non-geometric ops get the identity.
  """
  v = _lerp(magnitude, -0.3, 0.3)
  theta = jnp.deg2rad(_lerp(magnitude, -30.0, 30.0))
  cos, sin = jnp.cos(theta), jnp.sin(theta)
  cx, cy = width / 2, height / 2  # Image.rotate's default centre.
  one, zero = jnp.ones_like(v), jnp.zeros_like(v)
  matrices = {
      # Image.rotate: counter-clockwise on screen, about the centre.
      "rotate": (cos, -sin, cx - cos * cx + sin * cy,
                 sin, cos, cy - sin * cx - cos * cy),
      # RandAugment's matrices, so shears are about the top-left corner.
      "shear_x": (one, v, zero, zero, one, zero),
      "shear_y": (one, zero, zero, v, one, zero),
      "translate_x": (one, zero, v * width, zero, one, zero),
      "translate_y": (one, zero, zero, zero, one, v * height),
  }
  out = jnp.stack((one, zero, zero, zero, one, zero), -1)
  for name, matrix in matrices.items():
    out = jnp.where(_is(op, name, 2), jnp.stack(matrix, -1), out)
  return out


def _warp(images: jax.Array, op, magnitude, fill) -> jax.Array:
  """The geometric ops, as PIL's Image.transform(AFFINE, NEAREST).

  PIL maps each output pixel's centre (x + 0.5, y + 0.5) and takes the input
  pixel containing the point, so the identity matrix is exactly a copy.
  Points outside the input become `fill`.
  """
  b, h, w, c = images.shape
  m = _affine_matrices(op, magnitude, h, w)[:, :, None, None]
  y = jnp.arange(h, dtype=jnp.float32)[:, None] + 0.5
  x = jnp.arange(w, dtype=jnp.float32)[None, :] + 0.5
  src_x = jnp.floor(m[:, 0] * x + m[:, 1] * y + m[:, 2]).astype(jnp.int32)
  src_y = jnp.floor(m[:, 3] * x + m[:, 4] * y + m[:, 5]).astype(jnp.int32)
  inside = (src_x >= 0) & (src_x < w) & (src_y >= 0) & (src_y < h)
  index = jnp.clip(src_y, 0, h - 1) * w + jnp.clip(src_x, 0, w - 1)
  out = jnp.take_along_axis(images.reshape(b, h * w, c),
                            index.reshape(b, h * w, 1), axis=1)
  return jnp.where(inside[..., None], out.reshape(images.shape),
                   jnp.asarray(fill, images.dtype))


def _grayscale(x: jax.Array) -> jax.Array:
  """int32 (B, H, W, C) -> PIL's convert('L'), (B, H, W, 1); C=1 as is."""
  if x.shape[-1] == 1:
    return x
  return (x[..., 0:1] * 19595 + x[..., 1:2] * 38470 + x[..., 2:3] * 7471
          + 0x8000) >> 16


def _smooth(x: jax.Array) -> jax.Array:
  """int32 (B, H, W, C) -> PIL's ImageFilter.SMOOTH; border pixels kept.

  PIL sums in float32 with weights 1/13 and rounds half up; in integers that
  is (s + 6) // 13 for the integer weighted sum s, exactly, since s / 13 is
  never within float error of a half.
  """
  rows = x[:, :, :-2] + x[:, :, 1:-1] + x[:, :, 2:]
  s = rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:] + 4 * x[:, 1:-1, 1:-1]
  return x.at[:, 1:-1, 1:-1].set((s + 6) // 13)


def _blend(images: jax.Array, op, magnitude, fill) -> jax.Array:
  """ImageEnhance's ops: degenerate + factor * (image - degenerate).

  Computed in float32 and truncated, as PIL's Image.blend does; other ops get
  factor 1, which gives back the image exactly. `fill` is unused.
  """
  del fill
  x = images.astype(jnp.int32)
  gray = _grayscale(x)
  n = gray.shape[1] * gray.shape[2]
  # int(mean + 0.5) as ImageEnhance.Contrast rounds it, in exact integers.
  mean = (2 * gray.sum((1, 2, 3)) + n) // (2 * n)
  degenerate = jnp.select(
      [_is(op, name, 4) for name in _BLENDS],
      [jnp.broadcast_to(gray, x.shape),
       jnp.broadcast_to(mean[:, None, None, None], x.shape),
       jnp.zeros_like(x), _smooth(x)], x).astype(jnp.float32)
  is_blend = sum(_is(op, name, 4) for name in _BLENDS) > 0
  factor = _lerp(magnitude, 0.05, 0.95)[:, None, None, None]
  factor = jnp.where(is_blend, factor, 1.0)
  out = degenerate + factor * (x.astype(jnp.float32) - degenerate)
  return jnp.clip(out, 0, 255).astype(jnp.uint8)


def _histograms(images: jax.Array) -> jax.Array:
  """(B, H, W, C) uint8 -> (B, C, 256) int32 counts, by one scatter-add."""
  b, _, _, c = images.shape
  base = jnp.arange(b * c, dtype=jnp.int32).reshape(b, 1, 1, c) * 256
  index = (base + images.astype(jnp.int32)).ravel()
  counts = jnp.zeros(b * c * 256, jnp.int32).at[index].add(1)
  return counts.reshape(b, c, 256)


def _point(images: jax.Array, op, magnitude, fill) -> jax.Array:
  """The ImageOps point ops, by a (B, C, 256) lookup table; `fill` unused."""
  del fill
  b, h, w, c = images.shape
  levels = jnp.arange(256, dtype=jnp.int32)
  hist = _histograms(images)
  present = hist > 0
  lo = jnp.argmax(present, -1)[..., None]
  hi = 255 - jnp.argmax(present[..., ::-1], -1)[..., None]
  # ImageOps.autocontrast(cutoff=0) in exact integers; PIL's float64
  # int(i * scale + offset) is at times one lower where the exact value is
  # an integer (see tests/test_randaugment.py).
  stretched = (levels - lo) * 255 // jnp.maximum(hi - lo, 1)
  autocontrast = jnp.where(hi > lo, jnp.clip(stretched, 0, 255), levels)
  # ImageOps.equalize: step from all pixels but the top level's; a LUT
  # value past 255 is clipped, as PIL's point() does.
  step = (h * w - jnp.take_along_axis(hist, hi, -1)) // 255
  # A scan, not jnp.cumsum: on CPU that lowers to a quadratic reduce-window.
  before = jax.lax.associative_scan(jnp.add, hist, axis=-1) - hist
  equalized = (step // 2 + before) // jnp.maximum(step, 1)
  equalize = jnp.where(step > 0, jnp.minimum(equalized, 255), levels)
  m = magnitude[:, None, None]
  solarize = jnp.where(levels >= m * 256, 255 - levels, levels)
  shift = 8 - jnp.round(_lerp(m, 4.0, 8.0)).astype(jnp.int32)
  posterize = (levels >> shift) << shift
  tables = jnp.stack([jnp.broadcast_to(t, hist.shape) for t in (
      autocontrast, equalize, solarize, posterize, levels)], 1)
  kind = jnp.select([op == _INDEX[name] for name in _LUTS],
                    list(range(len(_LUTS))), len(_LUTS))
  # Picked by a gather, not jnp.select: XLA fuses a select into the lookup
  # below and rebuilds every table for every pixel (3x slower on CPU).
  luts = jnp.take_along_axis(tables, kind[:, None, None, None], 1)[:, 0]
  luts = jnp.swapaxes(luts, 1, 2).astype(jnp.uint8)
  index = images.reshape(b, h * w, c).astype(jnp.int32)
  return jnp.take_along_axis(luts, index, axis=1).reshape(images.shape)


_STAGES = (_warp, _blend, _point)


def _apply_ops(images: jax.Array, ops: jax.Array, magnitudes: jax.Array,
               fill) -> jax.Array:
  """Applies ops (B, K) at magnitudes (B, K) to the images, in column order.

  Each op is one pass of each kind; a pass is the identity for images whose
  op is of another kind, so the order of the passes is free. The passes run
  as the branches of a switch in a loop, so each reads its input as a plain
  array: unrolled, XLA fused them into each other's gathers and redid the
  work per pixel and per consumer (5x slower on CPU).
  """
  if not ops.shape[1]:  # No ops: the loop's body would index nothing.
    return images

  def step(i, images):
    op = jax.lax.dynamic_index_in_dim(ops, i // 3, 1, keepdims=False)
    magnitude = jax.lax.dynamic_index_in_dim(magnitudes, i // 3, 1,
                                             keepdims=False)
    return jax.lax.switch(i % 3, _STAGES, images, op, magnitude, fill)

  return jax.lax.fori_loop(0, 3 * ops.shape[1], step, images)


def apply_op(images: jax.Array, op: jax.Array, magnitude: jax.Array,
             fill=128) -> jax.Array:
  """Applies op OPS[op[i]] at magnitude[i] in [0, 1] to image i.

  images: (B, H, W, C) uint8, C = 3 (RGB) or 1; op: (B,) int; magnitude:
  (B,) float, mapped linearly onto the op's range (FixMatch Table 12):
  rotate [-30, 30] degrees, shear_x/y [-0.3, 0.3], translate_x/y [-0.3, 0.3]
  of the width/height, solarize threshold [0, 256), posterize round([4, 8])
  bits, and color/contrast/brightness/sharpness factor [0.05, 0.95];
  identity, autocontrast and equalize ignore it. Geometric ops fill
  uncovered pixels with `fill` (a level or one per channel).
  """
  return _apply_ops(images, jnp.asarray(op, jnp.int32)[:, None],
                    jnp.asarray(magnitude, jnp.float32)[:, None], fill)


def _draw_cutout(rng: jax.Array, batch_size: int, height: int, width: int,
                 max_fraction: float):
  size_rng, y_rng, x_rng = jax.random.split(rng, 3)
  fraction = jax.random.uniform(size_rng, (batch_size,), maxval=max_fraction)
  size = jnp.round(fraction * width).astype(jnp.int32)
  return (size, jax.random.randint(y_rng, (batch_size,), 0, height),
          jax.random.randint(x_rng, (batch_size,), 0, width))


def cutout_at(images: jax.Array, size: jax.Array, centre_y: jax.Array,
              centre_x: jax.Array, fill=128) -> jax.Array:
  """Sets a size x size square of image i to `fill`, clipped at the borders.

  The square covers rows [centre_y - size // 2, centre_y - size // 2 + size)
  and likewise columns; all arguments (B,) int.
  """
  _, h, w, _ = images.shape

  def inside(centre, length):
    start = (centre - size // 2)[:, None]
    index = jnp.arange(length)[None]
    return (index >= start) & (index < start + size[:, None])

  box = inside(centre_y, h)[:, :, None] & inside(centre_x, w)[:, None, :]
  return jnp.where(box[..., None], jnp.asarray(fill, images.dtype), images)


def cutout(rng: jax.Array, images: jax.Array, max_fraction: float = 0.5,
           fill=128) -> jax.Array:
  """Cutout with side round(uniform[0, max_fraction] * width) pixels and
  centre uniform over the pixels, per image."""
  b, h, w, _ = images.shape
  return cutout_at(images, *_draw_cutout(rng, b, h, w, max_fraction),
                   fill=fill)


class Draws(NamedTuple):
  """What `randaugment` draws from its key, for each of B images.

  ops, magnitudes: (B, num_ops) int32 indices into OPS and float32 in [0, 1],
    applied in column order.
  cutout_size, centre_y, centre_x: (B,) int32 arguments of `cutout_at`.
  """
  ops: jax.Array
  magnitudes: jax.Array
  cutout_size: jax.Array
  centre_y: jax.Array
  centre_x: jax.Array


def draw(rng: jax.Array, batch_size: int, height: int, width: int,
         num_ops: int = 2, cutout_fraction: float = 0.5) -> Draws:
  """The draws `randaugment(rng, images, num_ops, cutout_fraction)` makes."""
  op_rng, magnitude_rng, cutout_rng = jax.random.split(rng, 3)
  return Draws(
      jax.random.randint(op_rng, (batch_size, num_ops), 0, len(OPS)),
      jax.random.uniform(magnitude_rng, (batch_size, num_ops)),
      *_draw_cutout(cutout_rng, batch_size, height, width, cutout_fraction))


def randaugment(rng: jax.Array, images: jax.Array, num_ops: int = 2,
                cutout_fraction: float = 0.5, fill=128) -> jax.Array:
  """FixMatch's RA: num_ops random ops, each at a random magnitude, then
  cutout, each image its own draws. (B, H, W, C) uint8 in and out; num_ops
  is static under jit."""
  b, h, w, _ = images.shape
  draws = draw(rng, b, h, w, num_ops, cutout_fraction)
  images = _apply_ops(images, draws.ops, draws.magnitudes, fill)
  return cutout_at(images, draws.cutout_size, draws.centre_y, draws.centre_x,
                   fill)
