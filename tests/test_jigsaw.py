"""Jigsaw puzzles against NumPy: tiles, offsets, permutation set, loss."""
import itertools

import jax
import numpy as np
import pytest

from ssl_jax import plugins
from ssl_jax import pretext
from ssl_jax.pretext import jigsaw


def _cfg(**fields):
  """The defaults, but tiles at their own size unless a test asks."""
  cfg = jigsaw.get_config()
  cfg.update({"tile_size": 0, **fields})
  return cfg


def _images(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _run(cfg, images, rng):
  """The transform under jit, on the host as NumPy."""
  fn = jax.jit(lambda x, r: jigsaw.transform(cfg, x, r, r is not None))
  return jax.device_get(fn(images, rng))


def _square(image, grid):
  """The centred grid*c square, cut independently of the module."""
  h, w = image.shape[:2]
  c = min(h, w) // grid
  top, left = (h - grid * c) // 2, (w - grid * c) // 2
  return image[top:top + grid * c, left:left + grid * c], c


def _reference_tiles(images, cells, offsets, grid, tile):
  """(B*T, t, t, C): slot j of puzzle i cut from cell cells[i, j] in NumPy."""
  out = []
  for i, image in enumerate(images):
    square, c = _square(image, grid)
    for j, cell in enumerate(cells[i]):
      y = cell // grid * c + offsets[i, j, 0]
      x = cell % grid * c + offsets[i, j, 1]
      out.append(square[y:y + tile, x:x + tile])
  return np.stack(out)


@pytest.mark.parametrize("grid,shape", [(2, (6, 32, 32, 3)),
                                        (3, (6, 35, 33, 1))])
def test_tiles_put_back_in_their_cells_rebuild_the_image(grid, shape):
  images = _images(shape)
  num = 24 if grid == 2 else 30
  cfg = _cfg(grid=grid, jitter=0, tile_size=0, num_permutations=num)
  perms = jigsaw.permutations(grid * grid, num, 0)
  for rng in (jax.random.key(0), None):
    out = _run(cfg, images, rng)
    t = grid * grid
    c = min(shape[1:3]) // grid
    assert out.images.shape == (shape[0] * t, c, c, shape[3])
    assert out.images.dtype == np.uint8
    tiles = out.images.reshape((shape[0], t) + out.images.shape[1:])
    for i, image in enumerate(images):
      canvas = np.zeros((grid * c, grid * c, shape[3]), np.int32) - 1
      for j, cell in enumerate(perms[out.target[i]]):
        r, col = divmod(int(cell), grid)
        canvas[r * c:(r + 1) * c, col * c:(col + 1) * c] = tiles[i, j]
      np.testing.assert_array_equal(canvas, _square(image, grid)[0])
    np.testing.assert_array_equal(out.source, np.arange(shape[0]))
    assert out.target.dtype == np.int32


def test_jittered_tiles_are_the_slices_at_their_offsets():
  grid, jitter = 2, 3
  images = _images((32, 32, 32, 3), seed=1)
  cfg = _cfg(grid=grid, jitter=jitter)
  perms = jigsaw.permutations(4, 24, 0)
  out = _run(cfg, images, jax.random.key(5))
  assert out.images.shape == (32 * 4, 13, 13, 3)
  assert out.extra.shape == (32, 4, 2)
  assert out.extra.min() == 0 and out.extra.max() == jitter
  assert len(set(out.target.tolist())) > 12  # Random puzzles, not one.
  expected = _reference_tiles(images, perms[out.target], out.extra,
                              grid, 13)
  np.testing.assert_array_equal(out.images, expected)

  evaluation = _run(cfg, images, None)
  np.testing.assert_array_equal(evaluation.extra, 1)  # jitter // 2.
  np.testing.assert_array_equal(evaluation.target, np.arange(32) % 24)
  np.testing.assert_array_equal(
      evaluation.images,
      _reference_tiles(images, perms[np.arange(32) % 24],
                       np.ones((32, 4, 2), int), grid, 13))
  again = _run(cfg, images, None)
  np.testing.assert_array_equal(again.images, evaluation.images)


def _hamming(a, b):
  """Pairwise Hamming distances, (len(a), len(b))."""
  return (a[:, None, :] != b[None, :, :]).sum(-1)


def test_grid_2_set_is_all_of_4_factorial():
  perms = jigsaw.permutations(4, 24, 0)
  assert {tuple(p) for p in perms} == set(itertools.permutations(range(4)))


def test_grid_3_set_is_a_greedy_max_min_hamming_trace():
  perms = jigsaw.permutations(9, 10, 0)
  assert perms.shape == (10, 9)
  assert all(sorted(p) == list(range(9)) for p in perms)
  assert len({tuple(p) for p in perms}) == 10
  # Brute force: each next permutation is as far from those before it as
  # the best of all 9! candidates (whatever the tie-breaking chose).
  every = np.array(list(itertools.permutations(range(9))), np.int8)
  nearest = np.full(len(every), 99)
  for k in range(1, len(perms)):
    nearest = np.minimum(nearest, _hamming(every, perms[k - 1:k])[:, 0])
    assert _hamming(perms[k:k + 1], perms[:k]).min() == nearest.max()
  distances = _hamming(perms, perms) + 99 * np.eye(10, dtype=int)
  assert distances.min() >= 8

  np.testing.assert_array_equal(jigsaw.permutations(9, 10, 0), perms)
  assert not np.array_equal(jigsaw.permutations(9, 10, 1), perms)


def test_bad_fields_are_named():
  with pytest.raises(ValueError, match="num_permutations"):
    jigsaw.spec(_cfg(num_permutations=25))
  with pytest.raises(ValueError, match="num_permutations"):
    jigsaw.permutations(4, 25, 0)
  with pytest.raises(ValueError, match="grid"):
    jigsaw.transform(_cfg(grid=1), np.zeros((2, 32, 32, 3)), None, False)
  with pytest.raises(ValueError, match="jitter"):
    jigsaw.transform(_cfg(jitter=16), np.zeros((2, 32, 32, 3)), None, False)


def test_head_and_registry():
  cfg = _cfg(grid=3, num_permutations=100, head_hidden=[64])
  assert jigsaw.spec(cfg).head == pretext.Head(100, (64,), 9)
  assert plugins.load("pretext", "jigsaw") is jigsaw


def test_loss_is_masked_cross_entropy():
  rng = np.random.default_rng(2)
  logits = rng.normal(size=(8, 24)).astype(np.float32)
  target = rng.integers(0, 24, 8).astype(np.int32)
  logits[[0, 1, 6], target[[0, 1, 6]]] += 20.0  # Rows 0, 1, 6 are right.
  mask = np.array([1, 1, 1, 1, 1, 0, 0, 0], np.float32)  # 5..7: padding.
  loss, metrics = jax.jit(lambda o, v, m: jigsaw.loss(None, o, v, m))(
      logits, pretext.Views(None, target, None), mask)
  shifted = logits - logits.max(-1, keepdims=True)
  log_softmax = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
  ce = -log_softmax[np.arange(8), target]
  np.testing.assert_allclose(loss, ce[:5].mean(), rtol=1e-5)
  np.testing.assert_allclose(metrics["loss"], [ce[:5].sum(), 5], rtol=1e-5)
  correct = (logits.argmax(-1) == target)[:5].sum()
  assert correct == 2
  np.testing.assert_array_equal(metrics["accuracy"], [correct, 5])


def test_resized_tiles_match_jax_image_resize_of_numpy_tiles():
  grid, jitter, size = 2, 2, 32
  images = _images((4, 32, 32, 3), seed=3)
  out = _run(_cfg(grid=grid, jitter=jitter, tile_size=size), images,
             jax.random.key(1))
  assert out.images.shape == (16, size, size, 3)
  assert out.images.dtype == np.float32
  tiles = _reference_tiles(images, jigsaw.permutations(4, 24, 0)[
      out.target], out.extra, grid, 14).astype(np.float32)
  expected = jax.image.resize(tiles, (16, size, size, 3), "bilinear")
  np.testing.assert_allclose(out.images, expected, atol=1e-3)
  assert 0 <= out.images.min() and out.images.max() <= 255
