"""`Rows` (images read from storage by row) against NumPy's own indexing."""
import numpy as np
import pytest

from ssl_jax.data import cifar10
from ssl_jax.data import rows

import helpers


def _lazy(array, log=None):
  def read(idx):
    if log is not None:
      log.append(np.array(idx))
    return array[idx]
  return rows.Rows(read, len(array), array.shape[1:], array.dtype, "test")


def test_indexing_take_concat_and_padding_equal_numpy():
  rng = np.random.default_rng(0)
  a = rng.integers(0, 256, (30, 2, 2, 3), np.uint8)
  b = rng.integers(0, 256, (7, 2, 2, 3), np.uint8)
  lazy_a = _lazy(a)
  for index in (5, -1, slice(3, 20, 4), slice(None), np.array([4, -2, 4])):
    np.testing.assert_array_equal(lazy_a[index], a[index])
  idx = rng.integers(0, 30, 12)
  pool = rows.concat([rows.take(lazy_a, idx), _lazy(b), rows.zeros(3, b)])
  want = np.concatenate([a[idx], b, np.zeros((3, 2, 2, 3), np.uint8)])
  assert pool.shape == want.shape and pool.nbytes == want.nbytes
  np.testing.assert_array_equal(np.asarray(pool), want)
  query = rng.permutation(len(want))[:9]
  np.testing.assert_array_equal(pool[query], want[query])
  # Plain arrays in, plain arrays out.
  assert isinstance(rows.concat([a, b]), np.ndarray)
  np.testing.assert_array_equal(rows.take(a, idx), a[idx])


def test_only_the_asked_rows_are_read():
  a = np.arange(40, dtype=np.uint8).reshape(40, 1)
  log = []
  pool = rows.concat([rows.take(_lazy(a, log), np.arange(20, 40)),
                      _lazy(a, log)])
  pool[np.array([0, 25])]
  assert sorted(np.concatenate(log).tolist()) == [5, 20]


def test_bad_index_names_the_source():
  lazy = _lazy(np.zeros((4, 1), np.uint8))
  with pytest.raises(IndexError, match="test: row index out of range"):
    lazy[np.array([4])]
  with pytest.raises(IndexError, match="test: rows are read by a slice"):
    lazy[np.array([0.5])]


def test_cifar10_files_read_lazily_equal_the_eager_reader():
  eager = cifar10.read(helpers.CIFAR_DIR)
  lazy = cifar10.read(helpers.CIFAR_DIR, lazy=True)
  if eager is None:
    pytest.skip(f"CIFAR-10 not in {helpers.CIFAR_DIR}")
  assert isinstance(lazy[0], rows.Rows) and lazy[0].shape == eager[0].shape
  idx = np.random.default_rng(0).integers(0, 50_000, 500)
  np.testing.assert_array_equal(lazy[0][idx], eager[0][idx])
  np.testing.assert_array_equal(lazy[1], eager[1])
  np.testing.assert_array_equal(lazy[2][-100:], eager[2][-100:])
