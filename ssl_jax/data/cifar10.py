"""Reader for the original CIFAR-10 binary batches (cifar-10-batches-bin)."""
import pathlib

import numpy as np

_RECORD = 1 + 32 * 32 * 3  # label byte, then R, G, B planes, row-major.
_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
_TEST = "test_batch.bin"


def read_batch_file(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  """Returns (images uint8 (N, 32, 32, 3), labels int32 (N,)) of one file."""
  raw = np.fromfile(path, dtype=np.uint8)
  if raw.size == 0 or raw.size % _RECORD:
    raise ValueError(
        f"{path}: {raw.size} bytes is not a whole number of {_RECORD}-byte "
        "CIFAR-10 records; the file is truncated or not a CIFAR-10 batch.")
  raw = raw.reshape(-1, _RECORD)
  labels = raw[:, 0].astype(np.int32)
  bad = np.flatnonzero(labels > 9)
  if bad.size:
    raise ValueError(f"{path}: record {bad[0]} has label {labels[bad[0]]}, "
                     "expected 0-9.")
  images = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return np.ascontiguousarray(images), labels


def read(directory: pathlib.Path):
  """Reads the dataset from `directory` (or its cifar-10-batches-bin/).

  Returns (train images, train labels, test images, test labels, class
  names), or None when the files are not there.
  """
  directory = pathlib.Path(directory)
  for d in (directory, directory / "cifar-10-batches-bin"):
    if all((d / f).is_file() for f in _TRAIN + (_TEST,)):
      break
  else:
    return None
  train = [read_batch_file(d / f) for f in _TRAIN]
  test_images, test_labels = read_batch_file(d / _TEST)
  meta = d / "batches.meta.txt"
  names = ([l.strip() for l in meta.read_text().splitlines() if l.strip()]
           if meta.is_file() else [str(i) for i in range(10)])
  return (np.concatenate([x for x, _ in train]),
          np.concatenate([y for _, y in train]),
          test_images, test_labels, tuple(names))
