"""Reader for the original CIFAR-10 binary batches (cifar-10-batches-bin)."""
import hashlib
import pathlib

import numpy as np

from ssl_jax.data import rows

_RECORD = 1 + 32 * 32 * 3  # label byte, then R, G, B planes, row-major.
_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
_TEST = "test_batch.bin"
RECORDS_PER_FILE = 10_000
# The md5 sums published with cifar-10-binary.tar.gz.
MD5 = {"data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
       "data_batch_2.bin": "5ea93a67294ea407fff1d09f752e9692",
       "data_batch_3.bin": "942cd6a4bcdd0dd3c604fbe906cb4421",
       "data_batch_4.bin": "ae636b3ba5c66a11e91e8cb52e771fcb",
       "data_batch_5.bin": "53f37980c15c3d472c316c40844f3f0d",
       "test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d"}
_UNCHECK = ("set --config.input.check_files=False to read files of your own "
            "in this format")


def _records(path: pathlib.Path, check: bool
             ) -> tuple[np.memmap, np.ndarray]:
  """(the file's records, mapped but not read: (N, 3073) uint8, labels)."""
  size = path.stat().st_size
  if size == 0 or size % _RECORD:
    raise ValueError(
        f"{path}: {size} bytes is not a whole number of {_RECORD}-byte "
        "CIFAR-10 records; the file is truncated or not a CIFAR-10 batch.")
  if check and size != RECORDS_PER_FILE * _RECORD:
    raise ValueError(
        f"{path}: expected {RECORDS_PER_FILE:,} records, found "
        f"{size // _RECORD:,}; the file is cut short or not the official "
        f"one (download it again, or {_UNCHECK}).")
  if check and path.name in MD5:
    with open(path, "rb") as f:
      found = hashlib.file_digest(f, "md5").hexdigest()
    if found != MD5[path.name]:
      raise ValueError(
          f"{path}: md5 {found}, expected the published {MD5[path.name]}; "
          f"the file is damaged or altered (download it again, or "
          f"{_UNCHECK}).")
  records = np.memmap(path, np.uint8, "r", shape=(size // _RECORD, _RECORD))
  labels = records[:, 0].astype(np.int32)
  bad = np.flatnonzero(labels > 9)
  if bad.size:
    raise ValueError(f"{path}: record {bad[0]} has label {labels[bad[0]]}, "
                     "expected 0-9.")
  return records, labels


def _images(records: np.ndarray) -> np.ndarray:
  """(N, 3073) records -> (N, 32, 32, 3) uint8 images."""
  return np.ascontiguousarray(
      records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def read_batch_file(path: pathlib.Path, check: bool = True, lazy: bool = False
                    ) -> tuple[np.ndarray | rows.Rows, np.ndarray]:
  """Returns (images uint8 (N, 32, 32, 3), labels int32 (N,)) of one file.

  With `check`, the file must hold the official 10,000 records and match
  its published md5. With `lazy`, the images are `Rows` read from the file
  by offset when indexed.
  """
  records, labels = _records(path, check)
  if lazy:
    return rows.Rows(lambda i: _images(records[i]), len(labels), (32, 32, 3),
                     np.uint8, str(path.parent)), labels
  return _images(records), labels


def read(directory: pathlib.Path, check: bool = True, lazy: bool = False):
  """Reads the dataset from `directory` (or its cifar-10-batches-bin/);
  `check` and `lazy` as in `read_batch_file`.

  Returns (train images, train labels, test images, test labels, class
  names), or None when the files are not there.
  """
  directory = pathlib.Path(directory)
  for d in (directory, directory / "cifar-10-batches-bin"):
    if all((d / f).is_file() for f in _TRAIN + (_TEST,)):
      break
  else:
    return None
  train = [read_batch_file(d / f, check, lazy) for f in _TRAIN]
  test_images, test_labels = read_batch_file(d / _TEST, check, lazy)
  meta = d / "batches.meta.txt"
  names = ([l.strip() for l in meta.read_text().splitlines() if l.strip()]
           if meta.is_file() else [str(i) for i in range(10)])
  return (rows.concat([x for x, _ in train], str(d)),
          np.concatenate([y for _, y in train]),
          test_images, test_labels, tuple(names))
