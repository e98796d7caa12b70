"""Image classification datasets as uint8 NumPy arrays, from files or TFDS.

`load(name, data_dir, source)` returns an `ImageDataset`; image size, channels
and class count come from the data, so training code never hard-codes them.
"""
import dataclasses
import os
import pathlib

from absl import logging
import numpy as np

from ssl_jax.data import cifar10
from ssl_jax.data import fashion_mnist

# The repository's parent holds `shared/data` on the project's machines.
_REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class ImageDataset:
  """A dataset held in host memory; images are uint8 NHWC, labels int32."""
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  class_names: tuple[str, ...]

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.train_images.shape[1:])


# name -> (reader(directory) -> arrays | None, default directories, help).
_READERS = {
    "cifar10": (
        cifar10.read,
        lambda: _candidates("cifar10"),
        "Download the binary version (cifar-10-binary.tar.gz) from "
        "https://www.cs.toronto.edu/~kriz/cifar.html, unpack it and pass "
        "--config.input.data_dir=DIR (or set $SSL_JAX_DATA_DIR), or install "
        "the `keras` extra and let TFDS download it.",
    ),
    "fashion_mnist": (
        fashion_mnist.read,
        lambda: _candidates("fashion_mnist") + [
            pathlib.Path("/usr/share/datasets/fashion-mnist")],
        "On Debian/Ubuntu: `apt-get install dataset-fashion-mnist`; or put "
        "the four IDX files (*-ubyte[.gz]) in a directory and pass "
        "--config.input.data_dir=DIR.",
    ),
}


def _candidates(name: str) -> list[pathlib.Path]:
  """Default places to look: $SSL_JAX_DATA_DIR, then ../shared/data."""
  dirs = []
  if os.environ.get("SSL_JAX_DATA_DIR"):
    root = pathlib.Path(os.environ["SSL_JAX_DATA_DIR"])
    dirs += [root / name, root]
  dirs += [pathlib.Path("../shared/data") / name,
           _REPO_ROOT.parent / "shared" / "data" / name]
  return dirs


def load(name: str, data_dir: str = "", source: str = "auto") -> ImageDataset:
  """Loads dataset `name` from `data_dir`, the default places, or TFDS.

  Args:
    name: 'cifar10' or 'fashion_mnist'.
    data_dir: a directory holding the original files; '' for the defaults.
    source: 'files' (local files only), 'tfds' (TFDS only), or 'auto'
      (local files, then TFDS).
  """
  if name not in _READERS:
    raise ValueError(f"Unknown dataset {name!r}; known: {sorted(_READERS)}.")
  if source not in ("auto", "files", "tfds"):
    raise ValueError(f"input.source must be auto|files|tfds, got {source!r}.")
  reader, defaults, how_to_get = _READERS[name]
  looked = []
  if source != "tfds":
    dirs = [pathlib.Path(data_dir)] if data_dir else defaults()
    for d in dirs:
      looked.append(str(d))
      arrays = reader(d)
      if arrays is not None:
        return ImageDataset(*arrays)
  if source != "files":
    if looked:  # TFDS retries a failed download for ~3 minutes: say why.
      logging.warning("Dataset %r not in %s; trying TFDS (without a network "
                      "it fails after a few minutes; input.source=files fails "
                      "at once).", name, "; ".join(looked))
    try:
      return _load_tfds(name)
    except Exception as e:  # pylint: disable=broad-except
      looked.append(f"TFDS {name!r} ({type(e).__name__}: {e})")
  raise FileNotFoundError(
      f"Dataset {name!r} not found. Looked in: {'; '.join(looked)}. "
      f"{how_to_get}")


def _load_tfds(name: str) -> ImageDataset:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = tfds.builder(name)
  builder.download_and_prepare()

  def split(s):  # -> (images uint8, labels int32)
    # Batches concatenated, not batch_size=-1: that aborts the process under
    # tfds.testing.mock_data, the offline test of this path.
    batches = list(tfds.as_numpy(builder.as_dataset(split=s,
                                                    batch_size=10_000)))
    return (np.concatenate([b["image"] for b in batches]).astype(np.uint8),
            np.concatenate([b["label"] for b in batches]).astype(np.int32))

  return ImageDataset(*split("train"), *split("test"),
                      class_names=tuple(builder.info.features["label"].names))
