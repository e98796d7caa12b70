"""Blobs: a generated 4-class dataset of 16x16 RGB images in one .npz file.

Class c is a bright square in quadrant c on noise. `write(directory)` makes
the file; a run reads it from input.data_dir (or $SSL_JAX_DATA_DIR/blobs).
"""
import pathlib

import numpy as np

from ssl_jax.data import registry

FILE = "blobs.npz"
CLASSES = ("top_left", "top_right", "bottom_left", "bottom_right")


def write(directory, train: int = 96, test: int = 48, seed: int = 0):
  """Writes `train` and `test` images to directory/blobs.npz."""
  rng = np.random.default_rng(seed)
  arrays = {}
  for split, n in (("train", train), ("test", test)):
    labels = np.arange(n, dtype=np.int32) % len(CLASSES)
    images = rng.integers(0, 96, (n, 16, 16, 3), dtype=np.uint8)
    for i, c in enumerate(labels):
      r, col = divmod(int(c), 2)
      images[i, 8 * r + 2:8 * r + 6, 8 * col + 2:8 * col + 6] = 255
    arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
  path = pathlib.Path(directory)
  path.mkdir(parents=True, exist_ok=True)
  np.savez(path / FILE, **arrays)


def read(directory: pathlib.Path, check: bool, lazy: bool):
  del check, lazy  # Our own files, small enough to load.
  path = pathlib.Path(directory) / FILE
  if not path.is_file():
    return None
  with np.load(path) as f:
    return (f["train_images"], f["train_labels"], f["test_images"],
            f["test_labels"], CLASSES)


DATASET = registry.DatasetSpec(
    "blobs", (16, 16, 3), len(CLASSES),
    "Make it with `python -c 'from lab_plugins import blobs; "
    "blobs.write(DIR)'` and pass --config.input.data_dir=DIR.",
    reader=read)
