"""Reader for Fashion-MNIST's original IDX files (optionally gzipped)."""
import gzip
import pathlib

import numpy as np

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
COUNTS = {"train": 60_000, "test": 10_000}  # Of the official files.


def read_idx(path: pathlib.Path) -> np.ndarray:
  """Parses an IDX file of unsigned bytes into an array of its shape."""
  opener = gzip.open if path.suffix == ".gz" else open
  with opener(path, "rb") as f:
    data = f.read()
  if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
    raise ValueError(f"{path}: not an IDX file of unsigned bytes "
                     f"(header {data[:4]!r}).")
  ndim = data[3]
  shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big")
                for i in range(ndim))
  offset = 4 + 4 * ndim
  if len(data) - offset != int(np.prod(shape)):
    raise ValueError(f"{path}: header says shape {shape} but the file holds "
                     f"{len(data) - offset} bytes of data.")
  return np.frombuffer(data, np.uint8, offset=offset).reshape(shape)


def _find(directory: pathlib.Path, stem: str):
  for name in (stem, stem + ".gz"):
    if (directory / name).is_file():
      return directory / name
  return None


def read(directory: pathlib.Path, check: bool = True,
         lazy: bool = False):
  """Returns (train images, labels, test images, labels, class names).

  None when the files are not in `directory`. With `check`, each split must
  hold the official number of 28x28 images (`COUNTS`). `lazy` is ignored:
  the IDX files may be gzipped, so they are read whole (47 MB at most).
  """
  del lazy
  directory = pathlib.Path(directory)
  paths = {k: [_find(directory, s) for s in v] for k, v in _FILES.items()}
  if any(p is None for v in paths.values() for p in v):
    return None
  arrays = {}
  for split, (images, labels) in paths.items():
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or y.shape != x.shape[:1]:
      raise ValueError(f"{images} and {labels}: shapes {x.shape} and "
                       f"{y.shape} do not pair up.")
    want = (COUNTS[split], 28, 28)
    if check and x.shape != want:
      raise ValueError(
          f"{images}: its IDX header says {x.shape[0]:,} images of "
          f"{x.shape[1:]}, expected the official {want[0]:,} of (28, 28); "
          "set --config.input.check_files=False to read files of your own.")
    arrays[split] = (x[..., None], y.astype(np.int32))
  return (*arrays["train"], *arrays["test"], CLASS_NAMES)
