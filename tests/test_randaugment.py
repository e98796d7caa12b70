"""RandAugment against PIL, the reference FixMatch's own code calls."""
import jax
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from ssl_jax.data import randaugment as ra

_apply = jax.jit(ra.apply_op)
_cutout_at = jax.jit(ra.cutout_at)
_cutout = jax.jit(ra.cutout)
_randaugment = jax.jit(ra.randaugment)

_GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
_PIXEL = tuple(name for name in ra.OPS if name not in _GEOMETRIC)
# Magnitudes m with m * (hi - lo) exact in float32. Under jit XLA fuses
# lo + m * (hi - lo) into one FMA, so for other m the module's factor can be
# an ulp off the float32 one computed here, which moves a blend whose exact
# value is an integer (200 * 0.365 = 73) one level. These also keep shears
# off exact pixel-boundary ties (see test_geometric_ops_match_pil).
_MAGNITUDES = (0.0, 0.25, 1.0)
# Nearest-neighbour sampling can pick the neighbouring pixel where a sample
# point falls within rounding error of a pixel boundary: PIL maps points in
# 16.16 fixed point (or float64), this module in float32. About 0.1% of
# pixels do for a rotation, none for shifts; a shear whose magnitude lands
# within float error of a tie flips a whole row (column), else none.
_GEOMETRIC_TOLERANCE = 0.005


def _uniform(n, h, w, c, seed):
  return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), np.uint8)


def _natural(n, h, w, c, seed):
  """Smooth gradients and waves plus noise, in a narrower range than [0, 255]
  per channel, so autocontrast and equalize have something to do."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:h, 0:w] / max(h, w)
  out = np.empty((n, h, w, c), np.uint8)
  for i in range(n):
    for ch in range(c):
      lo, hi = rng.uniform(20, 90), rng.uniform(140, 230)
      a, f, g = rng.uniform(0, 1), rng.uniform(1, 4), rng.uniform(1, 4)
      ramp = a * x + (1 - a) * y + 0.15 * np.sin(2 * np.pi * (f * x + g * y))
      value = lo + (hi - lo) * ramp + rng.normal(0, 6, (h, w))
      out[i, :, :, ch] = np.clip(np.round(value), 0, 255)
  return out


def _lerp(m, lo, hi):
  """The op ranges of FixMatch's Table 12, in float32 as the module does."""
  return np.float32(lo) + np.float32(m) * np.float32(hi - lo)


def _pil_op(image, name, m, fill=128):
  """One op on one (H, W, C) uint8 image by PIL."""
  h, w = image.shape[:2]
  im = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  fill = fill if im.mode == "L" else (fill,) * 3 if np.isscalar(fill) else fill
  factor, v = float(_lerp(m, 0.05, 0.95)), float(_lerp(m, -0.3, 0.3))
  affine = lambda data: im.transform((w, h), Image.AFFINE, data,
                                     resample=Image.NEAREST, fillcolor=fill)
  out = {
      "identity": lambda: im,
      "autocontrast": lambda: ImageOps.autocontrast(im),
      "equalize": lambda: ImageOps.equalize(im),
      "rotate": lambda: im.rotate(float(_lerp(m, -30, 30)),
                                  resample=Image.NEAREST, fillcolor=fill),
      "solarize": lambda: ImageOps.solarize(im, float(np.float32(m) * 256)),
      "color": lambda: ImageEnhance.Color(im).enhance(factor),
      "posterize": lambda: ImageOps.posterize(im, int(np.round(_lerp(m, 4,
                                                                     8)))),
      "contrast": lambda: ImageEnhance.Contrast(im).enhance(factor),
      "brightness": lambda: ImageEnhance.Brightness(im).enhance(factor),
      "sharpness": lambda: ImageEnhance.Sharpness(im).enhance(factor),
      "shear_x": lambda: affine((1, v, 0, 0, 1, 0)),
      "shear_y": lambda: affine((1, 0, 0, v, 1, 0)),
      "translate_x": lambda: affine((1, 0, v * w, 0, 1, 0)),
      "translate_y": lambda: affine((1, 0, 0, 0, 1, v * h)),
  }[name]()
  return np.asarray(out).reshape(image.shape)


def _check(out, expected, name, image):
  """Pixel ops exact, autocontrast within one level as below; geometric ops
  may differ on a few boundary pixels."""
  differ = (out != expected).any(-1).mean()
  if name in _GEOMETRIC:
    assert differ <= _GEOMETRIC_TOLERANCE, (name, differ)
  elif name == "autocontrast":
    # The module takes the exact floor of (x - lo) * 255 / (hi - lo). PIL's
    # float64 int(x * scale + offset) lands a hair below an exact integer
    # for some (lo, hi, x) and truncates one level lower: ~0.4% of table
    # entries, on some images ~10% of pixels. It differs nowhere else.
    lo = image.min((0, 1), keepdims=True).astype(int)
    hi = image.max((0, 1), keepdims=True).astype(int)
    integral = (image - lo) * 255 % np.maximum(hi - lo, 1) == 0
    lower = (expected.astype(int) == out.astype(int) - 1) & integral
    assert ((out == expected) | lower).all()
  else:
    np.testing.assert_array_equal(out, expected, err_msg=name)


def _batch_against_pil(images, name, fill=128):
  """Every image at every magnitude of _MAGNITUDES in one batched call."""
  n = len(images)
  batch = np.repeat(images, len(_MAGNITUDES), 0)
  mags = np.tile(np.float32(_MAGNITUDES), n)
  op = np.full(len(batch), ra.OPS.index(name), np.int32)
  out = np.asarray(_apply(batch, op, mags, fill))
  assert out.dtype == np.uint8 and out.shape == batch.shape
  for image, m, got in zip(batch, mags, out):
    _check(got, _pil_op(image, name, m, fill), name, image)
  return batch, out


def _rgb_images(h=32, w=32):
  images = np.concatenate([_uniform(2, h, w, 3, 0), _natural(2, h, w, 3, 1)])
  images[3, ..., 2] = 77  # A constant channel: autocontrast, equalize no-op.
  return images


@pytest.mark.parametrize("name", _PIXEL)
def test_pixel_ops_match_pil(name):
  batch, out = _batch_against_pil(_rgb_images(), name)
  if name not in ("identity", "autocontrast", "equalize"):
    # The magnitude matters, image by image (not one value for the batch).
    assert not np.array_equal(out[-3], out[-1]), name
  if name in ("autocontrast", "equalize"):
    assert not np.array_equal(out[6:], batch[6:])  # Natural images change.


@pytest.mark.parametrize("name", _GEOMETRIC)
@pytest.mark.parametrize("shape", [(32, 32), (24, 40)])
def test_geometric_ops_match_pil(name, shape):
  # Shear samples x + 0.5 + v (y + 0.5); a v like 0.12 puts a whole row of
  # points exactly on pixel boundaries, where PIL's fixed point and float32
  # round differently (a few % of pixels). Random magnitudes hit such a tie
  # with probability zero; _MAGNITUDES avoid them.
  _, out = _batch_against_pil(_rgb_images(*shape), name)
  assert (out == 128).all(-1).any()  # Some fill, at these magnitudes.


def test_fill_per_channel():
  images = _natural(2, 32, 32, 3, 5)
  fill = (0, 50, 255)
  for name in ("rotate", "translate_y"):
    op = np.full(2, ra.OPS.index(name), np.int32)
    mags = np.float32([0.0, 0.9])
    out = np.asarray(_apply(images, op, mags, fill))
    for image, m, got in zip(images, mags, out):
      _check(got, _pil_op(image, name, m, fill), name, image)
    assert (out == fill).all(-1).sum() > 50


def test_grayscale_images_match_pil():
  """C = 1 as PIL's mode "L": every op once; color is the identity."""
  images = _natural(len(ra.OPS), 32, 32, 1, 2)
  mags = np.full(len(ra.OPS), 0.25, np.float32)
  out = np.asarray(_apply(images, np.arange(len(ra.OPS)), mags))
  for name, image, got in zip(ra.OPS, images, out):
    _check(got, _pil_op(image, name, 0.25), name, image)
  np.testing.assert_array_equal(out[ra.OPS.index("color")],
                                images[ra.OPS.index("color")])


def _np_cutout(image, size, centre_y, centre_x, fill):
  out = image.copy()
  top, left = centre_y - size // 2, centre_x - size // 2
  out[max(top, 0):max(top + size, 0), max(left, 0):max(left + size, 0)] = fill
  return out


def test_cutout_at_matches_numpy():
  images = _uniform(8, 32, 32, 3, 3)
  size = np.array([0, 1, 7, 16, 16, 32, 10, 5], np.int32)
  cy = np.array([5, 0, 3, 16, 0, 31, 20, 31], np.int32)
  cx = np.array([5, 0, 30, 16, 31, 0, 8, 2], np.int32)
  out = np.asarray(_cutout_at(images, size, cy, cx))
  for i in range(8):
    np.testing.assert_array_equal(
        out[i], _np_cutout(images[i], size[i], cy[i], cx[i], 128))


def test_cutout_draws_clipped_squares():
  images = _uniform(64, 32, 32, 3, 4) // 2  # No pixel equals the fill.
  out = np.asarray(_cutout(jax.random.key(0), images, 0.5))
  sides = []
  for got in out:
    rows, cols = np.nonzero((got == 128).all(-1))
    if not len(rows):
      sides.append(0)
      continue
    height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
    assert len(rows) == height * width  # A filled rectangle ...
    assert max(height, width) <= 16  # ... of side <= 0.5 * 32 ...
    if rows.min() > 0 and cols.min() > 0 and rows.max() < 31 and (
        cols.max() < 31):
      assert height == width  # ... square where no border clips it.
    sides.append(max(height, width))
  assert len(set(sides)) > 8 and max(sides) >= 12
  np.testing.assert_array_equal(
      _cutout(jax.random.key(0), images, 0.0), images)


def test_batch_equals_per_image_replay():
  images = np.concatenate([_uniform(8, 32, 32, 3, 6),
                           _natural(8, 32, 32, 3, 7)])
  key = jax.random.key(11)
  out = np.asarray(_randaugment(key, images))
  draws = ra.draw(key, 16, 32, 32)
  assert draws.ops.shape == draws.magnitudes.shape == (16, 2)
  assert len(np.unique(draws.ops)) > 8  # Each image draws its own ops.
  for i in range(16):
    x = images[i:i + 1]
    for k in range(2):
      x = _apply(x, draws.ops[i, k:k + 1], draws.magnitudes[i, k:k + 1])
    x = _cutout_at(x, draws.cutout_size[i:i + 1], draws.centre_y[i:i + 1],
                   draws.centre_x[i:i + 1])
    np.testing.assert_array_equal(out[i], x[0], err_msg=str(i))


def test_randaugment_keys_shapes_and_draws():
  images = _natural(16, 32, 32, 3, 8)
  a = _randaugment(jax.random.key(0), images)
  assert a.dtype == np.uint8 and a.shape == images.shape
  np.testing.assert_array_equal(a, _randaugment(jax.random.key(0), images))
  assert not np.array_equal(a, _randaugment(jax.random.key(1), images))
  assert not np.array_equal(a, images)
  draws = ra.draw(jax.random.key(0), 4096, 32, 32)
  counts = np.bincount(np.asarray(draws.ops).ravel(), minlength=len(ra.OPS))
  assert len(counts) == len(ra.OPS) and counts.min() > 450  # ~585 each.
  mags = np.asarray(draws.magnitudes)
  assert 0 <= mags.min() < 0.01 and 0.99 < mags.max() < 1
  assert 0 <= np.asarray(draws.cutout_size).min()
  assert np.asarray(draws.cutout_size).max() == 16
