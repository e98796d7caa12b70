"""Arrays whose rows stay where they are stored until a batch asks for them.

A `Rows` is what the streaming input path needs of a split's images: a
shape, a dtype and `rows[indices]`, which reads those rows only (from a
`np.memmap` of the original files, or from TFDS's random-access ArrayRecord
source). `take` and `concat` build subsets and pools of them without reading
anything, so a process holds only the rows of the batches it streams; the
on-device path reads a split whole with `np.asarray(rows)`. Both also accept
plain NumPy arrays, which they index and concatenate at once.
"""
from typing import Callable, Sequence

import numpy as np


class Rows:
  """`read(indices)` -> those rows, as an array of `shape[1:]` rows."""

  def __init__(self, read: Callable[[np.ndarray], np.ndarray], length: int,
               row_shape: tuple[int, ...], dtype, where: str):
    self._read, self.where = read, where  # `where`: for logs and errors.
    self.shape = (int(length),) + tuple(row_shape)
    self.dtype = np.dtype(dtype)

  def __len__(self) -> int:
    return self.shape[0]

  @property
  def ndim(self) -> int:
    return len(self.shape)

  @property
  def nbytes(self) -> int:
    return int(np.prod(self.shape)) * self.dtype.itemsize

  def __getitem__(self, index) -> np.ndarray:
    """Reads rows: an int, a slice or an integer array (NumPy semantics)."""
    if isinstance(index, (int, np.integer)):
      return self[np.array([index])][0]
    idx = as_indices(index, len(self), self.where)
    out = self._read(idx)
    return out.reshape((len(idx),) + self.shape[1:]).astype(self.dtype,
                                                            copy=False)

  def __array__(self, dtype=None, copy=None):
    del copy  # Always a fresh array.
    out = self[:]
    return out if dtype is None else out.astype(dtype)

  def __repr__(self):
    return f"Rows({self.shape}, {self.dtype}, {self.where})"


def as_indices(index, n: int, where: str) -> np.ndarray:
  """A slice or integer array of rows of `n` as non-negative indices."""
  if isinstance(index, slice):
    return np.arange(*index.indices(n))
  idx = np.asarray(index)
  if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
    raise IndexError(f"{where}: rows are read by a slice or a 1-D integer "
                     f"index, got {idx.dtype} of shape {idx.shape}.")
  if idx.size and (idx.min() < -n or idx.max() >= n):
    raise IndexError(f"{where}: row index out of range for {n} rows.")
  return np.where(idx < 0, idx + n, idx)


def take(array, indices):
  """`array[indices]`: read now for an array, deferred for `Rows`."""
  if not isinstance(array, Rows):
    return array[indices]
  idx = as_indices(indices, len(array), array.where)
  return Rows(lambda i: array[idx[i]], len(idx), array.shape[1:],
              array.dtype, array.where)


def concat(parts: Sequence, where: str = ""):
  """`np.concatenate(parts)`, deferred when a part is `Rows` (named `where`,
  else by its parts)."""
  if not any(isinstance(p, Rows) for p in parts):
    return np.concatenate(parts)
  ends = np.cumsum([len(p) for p in parts])
  starts = ends - [len(p) for p in parts]

  def read(idx):
    part = np.searchsorted(ends, idx, side="right")
    out = np.empty((len(idx),) + parts[0].shape[1:], parts[0].dtype)
    for p in np.unique(part):  # Each part reads its rows once, in order.
      sel = part == p
      out[sel] = parts[p][idx[sel] - starts[p]]
    return out
  where = where or " + ".join(dict.fromkeys(getattr(p, "where", "memory")
                                            for p in parts))
  return Rows(read, ends[-1], parts[0].shape[1:], parts[0].dtype, where)


def zeros(length: int, like) -> np.ndarray | Rows:
  """`length` zero rows shaped like `like`'s: padding for an eval split."""
  if not isinstance(like, Rows):
    return np.zeros((length,) + like.shape[1:], like.dtype)
  return Rows(lambda i: np.zeros((len(i),) + like.shape[1:], like.dtype),
              length, like.shape[1:], like.dtype, "padding")


def is_lazy(data) -> bool:
  """Whether any leaf of a nested dict of arrays is `Rows`."""
  if isinstance(data, dict):
    return any(is_lazy(v) for v in data.values())
  return isinstance(data, Rows)


def materialized(data):
  """A nested dict of arrays with every `Rows` read whole."""
  if isinstance(data, dict):
    return {k: materialized(v) for k, v in data.items()}
  return np.asarray(data) if isinstance(data, Rows) else data
