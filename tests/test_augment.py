"""Affine augmentation against NumPy / SciPy references, all under jit."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from ssl_jax.data import augment

_affine = jax.jit(augment.affine)
_SEEDS_SETTINGS = dict(max_degrees=30.0, max_shift=0.2,
                       brightness_range=(0.85, 1.15), zoom_range=(0.85, 1.15))


def _params(b, angle=0.0, zoom=1.0, shift_y=0.0, shift_x=0.0,
            brightness=1.0):
  """Parameters for b images; each argument a scalar or one value per image."""
  full = lambda v: jnp.broadcast_to(jnp.asarray(v, jnp.float32), (b,))
  return augment.AffineParams(full(angle), full(zoom), full(shift_y),
                              full(shift_x), full(brightness))


def _images(dtype, shape=(4, 8, 8, 3), seed=0):
  rng = np.random.default_rng(seed)
  if dtype == np.uint8:
    return rng.integers(0, 256, shape, dtype=np.uint8)
  return rng.random(shape, dtype=np.float32)


def _edge_shift(image, dy, dx, pad=4):
  """Content moved down dy, right dx; the edge pixel fills in ("nearest")."""
  h, w = image.shape[:2]
  padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
  return padded[pad - dy:pad - dy + h, pad - dx:pad - dx + w]


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("shape", [(4, 8, 8, 3), (2, 6, 10, 1)])
def test_identity_is_exact(dtype, shape):
  images = _images(dtype, shape)
  out = _affine(images, _params(shape[0]))
  assert out.dtype == dtype
  np.testing.assert_array_equal(out, images)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_quarter_turns_match_np_rot90(dtype):
  images = _images(dtype)
  k = np.array([1, 2, 3, -1])
  out = np.asarray(_affine(images, _params(4, angle=k * np.pi / 2)))
  expected = np.stack([np.rot90(img, n) for img, n in zip(images, k)])
  if dtype == np.uint8:
    np.testing.assert_array_equal(out, expected)
  else:
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)
  # A single marked pixel: +90 degrees is counter-clockwise.
  marked = np.zeros((1, 4, 4, 1), np.uint8)
  marked[0, 0, 3, 0] = 1  # Top right goes to top left.
  out = np.asarray(_affine(marked, _params(1, angle=np.pi / 2)))
  assert np.argwhere(out[0, ..., 0]).tolist() == [[0, 0]]


def test_brightness_multiplies_and_clips():
  images = _images(np.uint8)
  images[:, 0, 0] = 255  # Saturates whatever the factor.
  factors = np.array([1.1, 0.5, 1.0, 1.15], np.float32)
  out = _affine(images, _params(4, brightness=factors))
  scaled = images.astype(np.float32) * factors[:, None, None, None]
  np.testing.assert_array_equal(
      out, np.clip(np.round(scaled), 0, 255).astype(np.uint8))
  assert (np.asarray(out)[0] == 255).sum() > (images[0] == 255).sum()
  floats = _images(np.float32)
  out = _affine(floats, _params(4, brightness=factors))
  np.testing.assert_array_equal(
      out, np.clip(floats * factors[:, None, None, None], 0, 1))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_whole_pixel_shifts_match_edge_padded_roll(dtype):
  images = _images(dtype)
  dy, dx = np.array([2, -3, 0, 1]), np.array([-3, 1, 2, 0])
  out = np.asarray(_affine(images, _params(4, shift_y=dy, shift_x=dx)))
  for o, img, y, x in zip(out, images, dy, dx):
    np.testing.assert_array_equal(o, _edge_shift(img, y, x))
  # Away from the edges, the same as np.roll.
  rolled = np.roll(images[0], (2, -3), axis=(0, 1))
  np.testing.assert_array_equal(out[0, 2:, :-3], rolled[2:, :-3])
  # The shift is along the output's axes, after the turn.
  out = np.asarray(_affine(images, _params(4, angle=np.pi / 2, shift_y=dy,
                                           shift_x=dx)))
  for o, img, y, x in zip(out, images, dy, dx):
    np.testing.assert_allclose(o, _edge_shift(np.rot90(img), y, x), atol=1e-5)


def _bilinear_np(image, rows, cols):
  """Textbook bilinear interpolation of an (H, W, C) image at float points."""
  r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
  fr, fc = (rows - r0)[..., None], (cols - c0)[..., None]
  return ((1 - fr) * (1 - fc) * image[r0, c0] + (1 - fr) * fc
          * image[r0, c0 + 1] + fr * (1 - fc) * image[r0 + 1, c0]
          + fr * fc * image[r0 + 1, c0 + 1])


def test_zoom_two_about_the_centre():
  images = _images(np.float32, (2, 9, 9, 2))  # Centre pixel (4, 4).
  out = np.asarray(_affine(images, _params(2, zoom=2.0)))
  # Even output points land on the grid: pixel 4 + d/2 for offset d.
  for i in range(0, 9, 2):
    for j in range(0, 9, 2):
      np.testing.assert_array_equal(
          out[:, i, j], images[:, 4 + (i - 4) // 2, 4 + (j - 4) // 2])
  # Elsewhere, bilinear between them (sources 2, 2.5, ..., 6 stay inside).
  src = 4 + (np.arange(9) - 4) / 2
  rows, cols = np.meshgrid(src, src, indexing="ij")
  for o, img in zip(out, images):
    np.testing.assert_allclose(o, _bilinear_np(img, rows, cols), atol=1e-6)


def test_combined_warp_matches_scipy_affine_transform():
  images = _images(np.float32, (3, 8, 10, 2))
  angle = np.deg2rad([30.0, -12.0, 75.0])
  zoom, dy, dx = [1.1, 0.85, 1.3], [1.5, -2.2, 0.0], [-0.7, 3.0, 2.5]
  out = np.asarray(_affine(images, _params(3, angle, zoom, dy, dx)))
  centre = np.array([3.5, 4.5])
  for o, img, a, z, y, x in zip(out, images, angle, zoom, dy, dx):
    # Counter-clockwise is the textbook turn in (x, up) axes; a displacement
    # (row, col) is (x, up) = (col, -row), as rows point down.
    turn = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    to_xy = np.array([[0.0, 1.0], [-1.0, 0.0]])
    forward = z * np.linalg.inv(to_xy) @ turn @ to_xy  # Content -> output.
    inverse = np.linalg.inv(forward)
    offset = centre - inverse @ (centre + [y, x])
    for c in range(img.shape[-1]):
      expected = ndimage.affine_transform(img[..., c], inverse, offset,
                                          order=1, mode="nearest")
      np.testing.assert_allclose(o[..., c], expected, atol=1e-5)


def test_random_affine_per_example_reproducible_and_in_range():
  image = _images(np.uint8, (1, 16, 16, 3))
  images = np.repeat(image, 8, axis=0)
  draw = jax.jit(augment.random_affine)
  key = jax.random.key(0)
  out = np.asarray(draw(key, images, **_SEEDS_SETTINGS))
  assert out.dtype == np.uint8
  assert len({o.tobytes() for o in out}) == 8  # Every copy warped its own way.
  np.testing.assert_array_equal(draw(key, images, **_SEEDS_SETTINGS), out)
  assert not np.array_equal(
      draw(jax.random.key(1), images, **_SEEDS_SETTINGS), out)
  params = augment.draw_params(key, 8, 16, 16, **_SEEDS_SETTINGS)
  np.testing.assert_array_equal(_affine(images, params), out)
  # Ranges: many draws fill them and stay inside.
  p = jax.jit(augment.draw_params, static_argnums=(1, 2, 3))(
      key, 20000, 32, 40, **_SEEDS_SETTINGS)
  bounds = {"angle": np.deg2rad(30), "shift_y": 0.2 * 32, "shift_x": 0.2 * 40}
  for name, bound in bounds.items():
    v = np.asarray(getattr(p, name))
    assert -bound - 1e-5 <= v.min() < -0.99 * bound
    assert 0.99 * bound < v.max() <= bound + 1e-5
  for name in ("zoom", "brightness"):
    v = np.asarray(getattr(p, name))
    assert 0.85 <= v.min() < 0.86 and 1.14 < v.max() <= 1.15
