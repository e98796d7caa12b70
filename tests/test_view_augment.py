"""View augmentations against PIL and float64 NumPy references written from
the torchvision / PIL definitions, at fixed per-image parameters."""
import colorsys
import functools
import itertools
import math

import jax
import numpy as np
import pytest
from PIL import Image, ImageOps

from ssl_jax.data import view_augment as va

_LUMA = np.array([0.299, 0.587, 0.114])
_resized_crop = jax.jit(va.resized_crop, static_argnums=2)
_hue = jax.jit(va.adjust_hue)
_jitter = jax.jit(va.jitter)
_blur = jax.jit(va.gaussian_blur, static_argnums=2)
# float32 sampling positions / factors against float64: errors ~1e-4 levels.
_FLOAT_TOL = 1e-3


def _images(n, h=32, w=32, c=3, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), np.uint8)


def _np_resized_crop(image, box, size):
  """Bilinear at pixel centres (align_corners=False), edge-clamped."""
  h, w = image.shape[:2]
  top, left, height, width = map(float, box)

  def axis(start, length, limit):
    pos = start + (np.arange(size) + 0.5) * length / size - 0.5
    pos = np.clip(pos, 0, limit - 1)
    lo = np.floor(pos).astype(int)
    return lo, np.minimum(lo + 1, limit - 1), pos - lo

  y0, y1, fy = axis(top, height, h)
  x0, x1, fx = axis(left, width, w)
  img = image.astype(np.float64)
  rows = img[y0] * (1 - fy)[:, None, None] + img[y1] * fy[:, None, None]
  return rows[:, x0] * (1 - fx)[:, None] + rows[:, x1] * fx[:, None]


def _upscale_boxes(n, h, w, size, seed):
  """(top, left, height, width) float boxes inside the image, each side
  smaller than `size`, so PIL's resize does not antialias."""
  rng = np.random.default_rng(seed)
  height = rng.uniform(3, min(h, size) - 1, n)
  width = rng.uniform(3, min(w, size) - 1, n)
  top, left = rng.uniform(0, h - height), rng.uniform(0, w - width)
  return np.stack([top, left, height, width], -1).astype(np.float32)


def _pil_resize(image, box, size):
  top, left, height, width = map(float, box)
  return Image.fromarray(image).resize(
      (size, size), Image.BILINEAR, box=(left, top, left + width,
                                         top + height))


@pytest.mark.parametrize("shape,size", [((32, 32), 32), ((24, 40), 16)])
def test_resized_crop_matches_numpy_and_pil(shape, size):
  images = _images(6, *shape)
  boxes = _upscale_boxes(6, *shape, size, seed=1)
  out = np.asarray(_resized_crop(images, boxes, size))
  assert out.shape == (6, size, size, 3) and out.dtype == np.float32
  for image, box, got in zip(images, boxes, out):
    np.testing.assert_allclose(got, _np_resized_crop(image, box, size),
                               atol=_FLOAT_TOL)
    # PIL uint8 rounds after each of its two passes: within one level.
    pil = np.asarray(_pil_resize(image, box, size), np.float64)
    assert np.abs(got - pil).max() <= 1.0
    # PIL's float mode ("F"), one channel at a time: no rounding.
    pil_f = np.stack([np.asarray(_pil_resize(image[..., c].astype(
        np.float32), box, size)) for c in range(3)], -1)
    np.testing.assert_allclose(got, pil_f, atol=_FLOAT_TOL)


def test_resized_crop_downscale_clamp_and_batch():
  """Any box, even past the border (edge clamp) or larger than the output
  (no antialiasing), is the NumPy formula; a batch is its images alone."""
  images = _images(4, 20, 20, 1, seed=2)
  boxes = np.float32([[-3.5, 2.25, 10, 26], [0, 0, 20, 20],
                      [5.5, 17.0, 14.0, 6.0], [1, 1, 2.5, 2.5]])
  out = np.asarray(_resized_crop(images, boxes, 8))
  for i in range(4):
    np.testing.assert_allclose(out[i], _np_resized_crop(images[i], boxes[i],
                                                        8), atol=_FLOAT_TOL)
    np.testing.assert_array_equal(
        out[i], _resized_crop(images[i:i + 1], boxes[i:i + 1], 8)[0])


def _torchvision_box(rng, height, width, scale, ratio):
  """transforms.RandomResizedCrop.get_params, with NumPy's generator."""
  area = height * width
  for _ in range(10):
    target = area * rng.uniform(*scale)
    aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
    w = int(round(math.sqrt(target * aspect)))
    h = int(round(math.sqrt(target / aspect)))
    if 0 < w <= width and 0 < h <= height:
      return (rng.integers(0, height - h + 1), rng.integers(0, width - w + 1),
              h, w)
  in_ratio = width / height
  if in_ratio < min(ratio):
    w, h = width, int(round(width / min(ratio)))
  elif in_ratio > max(ratio):
    h, w = height, int(round(height * max(ratio)))
  else:
    w, h = width, height
  return (height - h) // 2, (width - w) // 2, h, w


@pytest.mark.parametrize("shape,scale", [((32, 32), (0.08, 1.0)),
                                         ((24, 40), (0.5, 1.0))])
def test_crop_boxes_distribution_matches_torchvision(shape, scale):
  n, (height, width), ratio = 4096, shape, (3 / 4, 4 / 3)
  boxes = np.asarray(va.crop_boxes(jax.random.key(0), n, height, width,
                                   scale, ratio))
  sim = np.random.default_rng(0)
  ref = np.array([_torchvision_box(sim, height, width, scale, ratio)
                  for _ in range(n)], np.float64)
  for b in (boxes, ref):
    top, left, h, w = b.T
    assert (b == np.round(b)).all() and (h > 0).all() and (w > 0).all()
    assert (top >= 0).all() and (top + h <= height).all()
    assert (left >= 0).all() and (left + w <= width).all()
  stats = lambda b: np.array([
      (b[:, 2] * b[:, 3]).mean() / (height * width),  # Area fraction.
      np.log(b[:, 3] / b[:, 2]).mean(),  # Log aspect ratio.
      (b[:, 3] == width).mean(),  # Full width (incl. fallbacks).
      b[:, 0].mean() / height, b[:, 1].mean() / width,  # Offsets ...
      (b[:, 0] == 0).mean(), (b[:, 0] + b[:, 2] == height).mean(),  # ... to
      (b[:, 1] == 0).mean(), (b[:, 1] + b[:, 3] == width).mean()])  # edges.
  np.testing.assert_allclose(stats(boxes), stats(ref), atol=0.025)


@pytest.mark.parametrize("shape,expected", [
    ((32, 32), (0, 0, 32, 32)),  # Scale > 1 never fits: the whole image ...
    ((24, 40), (0, 4, 24, 32)),  # ... trimmed to ratio 4/3 ...
    ((40, 24), (4, 0, 32, 24))])  # ... or 3/4, centred.
def test_crop_boxes_fallback(shape, expected):
  boxes = va.crop_boxes(jax.random.key(1), 8, *shape, scale=(1.5, 2.0))
  np.testing.assert_array_equal(boxes, np.tile(np.float32(expected), (8, 1)))


def _np_hue(image, factor):
  """colorsys's HSV, per pixel, hue shifted by factor mod 1."""
  out = np.empty(image.shape)
  for idx in np.ndindex(image.shape[:2]):
    h, s, v = colorsys.rgb_to_hsv(*(image[idx] / 255.0))
    out[idx] = colorsys.hsv_to_rgb((h + factor) % 1.0, s, v)
  return out * 255


def _pil_hue(image, levels):
  """Hue shifted by levels / 255 of a turn in PIL's 8-bit HSV, as
  torchvision's PIL adjust_hue does, but wrapping at 255, PIL's full turn
  (torchvision's uint8 addition wraps at 256)."""
  h, s, v = Image.fromarray(image).convert("HSV").split()
  h = Image.fromarray(((np.asarray(h, int) + levels) % 255).astype(np.uint8))
  return np.asarray(Image.merge("HSV", (h, s, v)).convert("RGB"), np.float64)


def test_adjust_hue_matches_colorsys_and_pil():
  images = _images(6, 12, 12, seed=3)
  images[5, :6] = 90  # Grey pixels: hue undefined, must stay as they are.
  levels = np.array([0, 25, -40, 127, -127, 64])
  factors = np.float32(levels / 255)
  out = np.asarray(_hue(images, factors))
  for image, factor, level, got in zip(images, factors, levels, out):
    np.testing.assert_allclose(got, _np_hue(image, float(factor)),
                               atol=_FLOAT_TOL)
    # PIL truncates hue and saturation to 8 bits: up to 6 levels off where
    # the chroma is high, ~0.6 on average.
    diff = np.abs(got - _pil_hue(image, level))
    assert diff.max() <= 7 and diff.mean() < 1, (diff.max(), diff.mean())
  np.testing.assert_array_equal(out[5, :6], images[5, :6])
  assert np.abs(out[0] - images[0]).max() < _FLOAT_TOL  # Shift 0.
  np.testing.assert_allclose(_hue(images, np.full(6, 0.5, np.float32)),
                             _hue(images, np.full(6, -0.5, np.float32)),
                             atol=_FLOAT_TOL)
  gray = images[..., :1]
  np.testing.assert_array_equal(_hue(gray, factors), gray)  # C = 1: no hue.


def _np_jitter(image, factors, order):
  """torchvision's functional ops on float images, in the given order."""
  x = image.astype(np.float64)
  luma = lambda x: x @ (_LUMA if x.shape[-1] == 3 else np.ones(1))
  for op in order:
    f = float(factors[op])
    if op == va.BRIGHTNESS:
      x = np.clip(x * f, 0, 255)
    elif op == va.CONTRAST:
      mean = luma(x).mean()
      x = np.clip(mean + f * (x - mean), 0, 255)
    elif op == va.SATURATION:
      gray = luma(x)[..., None]
      x = np.clip(gray + f * (x - gray), 0, 255)
    elif x.shape[-1] == 3:
      x = _np_hue(x, f)
  return x


def test_jitter_matches_numpy_in_each_order():
  """One image, one factor set, in 8 of the 24 orders (each row its own)."""
  orders = np.array(list(itertools.permutations(range(4))))
  orders = orders[np.random.default_rng(5).permutation(24)[:8]]
  images = np.repeat(_images(1, 10, 10, seed=4), 8, 0)
  factors = np.tile(np.float32([1.3, 0.6, 1.8, 0.15]), (8, 1))
  out = np.asarray(_jitter(images, factors, orders))
  for image, order, got in zip(images, orders, out):
    np.testing.assert_allclose(got, _np_jitter(image, factors[0], order),
                               atol=_FLOAT_TOL)
  assert len({got.round(0).tobytes() for got in out}) == 8  # Order matters.
  for i in range(8):  # A batch is its images alone.
    np.testing.assert_array_equal(
        out[i], _jitter(images[i:i + 1], factors[i:i + 1], orders[i:i + 1])[0])


def test_jitter_grayscale_images():
  """C = 1: brightness and contrast act, saturation and hue are no-ops."""
  images = _images(2, 10, 10, 1, seed=6)
  factors = np.float32([[0.7, 1.4, 0.2, 0.3], [1.2, 0.5, 1.9, -0.4]])
  orders = np.array([[1, 3, 0, 2], [2, 0, 3, 1]])
  out = np.asarray(_jitter(images, factors, orders))
  for i in range(2):
    np.testing.assert_allclose(out[i], _np_jitter(images[i], factors[i],
                                                  orders[i]), atol=_FLOAT_TOL)


def test_color_jitter_applies_its_draws():
  """Each image: the NumPy ops at its drawn factors in its drawn order if
  drawn to apply, else unchanged."""
  n, strengths = 16, dict(brightness=0.4, contrast=0.4, saturation=0.2,
                          hue=0.1)
  images = _images(n, 8, 8, seed=7)
  key = jax.random.key(3)
  out = np.asarray(jax.jit(functools.partial(va.color_jitter, **strengths))(
      key, images))
  factors, orders, apply = map(np.asarray, va.jitter_params(key, n,
                                                            **strengths))
  assert 0 < apply.sum() < n
  for i in range(n):
    expected = (_np_jitter(images[i], factors[i], orders[i]) if apply[i]
                else images[i])
    np.testing.assert_allclose(out[i], expected, atol=_FLOAT_TOL)
  np.testing.assert_array_equal(
      va.color_jitter(key, images, prob=0.0), images)  # Off: exact.


def test_jitter_params_ranges():
  factors, orders, apply = map(np.asarray, va.jitter_params(
      jax.random.key(0), 4096, 0.8, 0.3, 1.5, 0.2, prob=0.8))
  lo, hi = factors.min(0), factors.max(0)
  np.testing.assert_allclose(lo, [0.2, 0.7, 0.0, -0.2], atol=0.01)
  np.testing.assert_allclose(hi, [1.8, 1.3, 2.5, 0.2], atol=0.01)
  assert (lo >= [0.2, 0.7, 0.0, -0.2]).all()
  assert (np.sort(orders, 1) == np.arange(4)).all()  # Permutations ...
  counts = np.unique(orders, axis=0, return_counts=True)[1]
  assert len(counts) == 24 and counts.min() > 120  # ... uniform (~171).
  assert abs(apply.mean() - 0.8) < 0.03


def test_random_grayscale():
  images = _images(64, 6, 6, seed=8)
  out = np.asarray(va.random_grayscale(jax.random.key(0), images, 0.5))
  gray = np.repeat((images @ _LUMA)[..., None], 3, -1)
  is_gray = [np.allclose(o, g, atol=_FLOAT_TOL) for o, g in zip(out, gray)]
  for o, image, g in zip(out, images, is_gray):
    assert g or np.array_equal(o, image)
  assert 16 < sum(is_gray) < 48
  np.testing.assert_array_equal(
      va.random_grayscale(jax.random.key(0), images, 0.0), images)


def _np_blur(image, sigma, k):
  """torchvision's Gaussian kernel, reflect padding, rows then columns."""
  x = np.linspace(-(k - 1) / 2, (k - 1) / 2, k)
  kernel = np.exp(-0.5 * (x / sigma) ** 2)
  kernel /= kernel.sum()
  r = k // 2
  padded = np.pad(image.astype(np.float64), ((r, r), (r, r), (0, 0)),
                  mode="reflect")
  h, w = image.shape[:2]
  rows = sum(kernel[i] * padded[i:i + h] for i in range(k))
  return sum(kernel[i] * rows[:, i:i + w] for i in range(k))


@pytest.mark.parametrize("shape,kernel_size", [((32, 32, 3), 3),
                                               ((24, 30, 3), 23),
                                               ((9, 7, 1), 5)])
def test_gaussian_blur_matches_numpy(shape, kernel_size):
  images = _images(4, *shape, seed=9)
  sigmas = np.float32([0.1, 0.7, 1.3, 2.0])
  out = np.asarray(_blur(images, sigmas, kernel_size))
  for i in range(4):
    np.testing.assert_allclose(out[i], _np_blur(images[i], sigmas[i],
                                                kernel_size), atol=_FLOAT_TOL)
    np.testing.assert_array_equal(
        out[i], _blur(images[i:i + 1], sigmas[i:i + 1], kernel_size)[0])
  with pytest.raises(ValueError):
    va.gaussian_blur(images, sigmas, kernel_size + 1)


def test_blur_kernel_size_and_random_blur():
  assert [va.blur_kernel_size(s) for s in (224, 96, 32, 10)] == [23, 9, 3, 3]
  images = _images(32, 16, 16, seed=10)
  key = jax.random.key(0)
  np.testing.assert_array_equal(va.random_blur(key, images, 0.0), images)
  out = np.asarray(va.random_blur(key, images, 0.5))
  blurred = [not np.array_equal(o, i) for o, i in zip(out, images)]
  assert 4 < sum(blurred) < 28
  # A blur lowers the variance of noise.
  for o, i, b in zip(out, images, blurred):
    assert not b or o.std() < i.std()


@pytest.mark.parametrize("threshold", [0, 1, 100, 128, 255, 256])
def test_solarize_matches_pil(threshold):
  images = _images(3, 16, 16, seed=11)
  out = np.asarray(va.solarize(images, threshold))
  for image, got in zip(images, out):
    expected = np.asarray(ImageOps.solarize(Image.fromarray(image),
                                            threshold))
    np.testing.assert_array_equal(got, expected)


def test_random_solarize():
  images = _images(64, 4, 4, seed=12)
  key = jax.random.key(0)
  out = np.asarray(va.random_solarize(key, images, 0.3))
  hit = [not np.array_equal(o, i) for o, i in zip(out, images)]
  for o, image, h in zip(out, images, hit):
    np.testing.assert_array_equal(o, va.solarize(image) if h else image)
  assert 8 < sum(hit) < 32
  np.testing.assert_array_equal(va.random_solarize(key, images, 0.0), images)


_OFF = dict(flip=False, jitter_prob=0.0, gray_prob=0.0, blur_prob=0.0,
            solarize_prob=0.0)


def test_view_identity_crop():
  images = _images(8, 32, 32, seed=13)
  view = jax.jit(functools.partial(va.view, size=32, scale=(1.0, 1.0),
                                   ratio=(1.0, 1.0), **_OFF))
  out = view(jax.random.key(0), images)
  assert out.dtype == np.float32
  np.testing.assert_array_equal(out, images)


def test_view_draws_per_image_and_is_deterministic():
  images = np.repeat(_images(1, 32, 32, seed=14), 16, 0)
  view = jax.jit(functools.partial(va.view, size=24, blur_prob=0.5,
                                   solarize_prob=0.2))
  a = np.asarray(view(jax.random.key(0), images))
  assert a.shape == (16, 24, 24, 3) and 0 <= a.min() and a.max() <= 255
  np.testing.assert_array_equal(a, view(jax.random.key(0), images))
  assert not np.array_equal(a, view(jax.random.key(1), images))
  assert len({x.tobytes() for x in a}) == 16  # Same image, 16 views.
