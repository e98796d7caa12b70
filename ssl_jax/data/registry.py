"""The image classification datasets: what each is and where to find it.

A dataset is a `DatasetSpec`. `input.name` names a built-in below by its
short name ('cifar10' is `CIFAR10`), or a dataset of your own by its import
path (ssl_jax/plugins.py): a module whose `DATASET` is its spec. A TFDS-only
dataset, like 'stl10' and 'svhn', needs its TFDS name alone; one read from
files of its own adds a `reader`.
"""
import dataclasses
import os
import pathlib
from typing import Callable

import numpy as np

from ssl_jax import plugins
from ssl_jax.data import cifar10
from ssl_jax.data import fashion_mnist

# reader(directory, check, lazy) -> (train images, train labels, test images,
# test labels, class names), or None when the files are not in `directory`;
# with `check`, files that are not the official ones are an error; with
# `lazy`, images may be `rows.Rows` read from the files on demand.
Reader = Callable[[pathlib.Path, bool, bool],
                  tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                        tuple[str, ...]] | None]

# The repository's parent holds `shared/data` on the project's machines.
_REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """One dataset. Class names come from the data (files or TFDS metadata);
  `image_shape` and `num_classes` are checked against what is loaded."""
  tfds_name: str
  image_shape: tuple[int, int, int]
  num_classes: int
  how_to_get: str  # Ends the not-found error.
  train_split: str = "train"  # TFDS split names.
  test_split: str = "test"
  unlabeled_split: str | None = None  # Images without labels, if TFDS has some.
  reader: Reader | None = None  # None: TFDS only.
  extra_dirs: tuple[str, ...] = ()  # Searched after `default_dirs`' places.


def tfds_how_to_get(tfds_name: str, note: str = "") -> str:
  """How to get a dataset that loads through TFDS only."""
  return (f"{note}{' ' if note else ''}It loads through TFDS only, as "
          f"{tfds_name!r}: with a network, a run downloads it, or `tfds build "
          f"{tfds_name} --data_dir=TFDS_DATA_DIR` prepares it; pass "
          f"--config.input.data_dir=TFDS_DATA_DIR for a copy outside TFDS's "
          f"default data_dir ($TFDS_DATA_DIR, else ~/tensorflow_datasets).")


CIFAR10 = DatasetSpec(
    "cifar10", (32, 32, 3), 10,
    "Download the binary version (cifar-10-binary.tar.gz) from "
    "https://www.cs.toronto.edu/~kriz/cifar.html, unpack it and pass "
    "--config.input.data_dir=DIR (or set $SSL_JAX_DATA_DIR), or install "
    "the `keras` extra and let TFDS download it.",
    reader=cifar10.read)
FASHION_MNIST = DatasetSpec(
    "fashion_mnist", (28, 28, 1), 10,
    "On Debian/Ubuntu: `apt-get install dataset-fashion-mnist`; or put "
    "the four IDX files (*-ubyte[.gz]) in a directory and pass "
    "--config.input.data_dir=DIR.",
    reader=fashion_mnist.read,
    extra_dirs=("/usr/share/datasets/fashion-mnist",))
# 5,000 labeled train, 8,000 test and 100,000 unlabeled images.
STL10 = DatasetSpec(
    "stl10", (96, 96, 3), 10,
    tfds_how_to_get("stl10", "STL-10 is a 2.5 GB download."),
    unlabeled_split="unlabelled")
# Its 'extra' split (531,131 images) is labeled, not an unlabeled pool.
SVHN = DatasetSpec(
    "svhn_cropped", (32, 32, 3), 10,
    tfds_how_to_get("svhn_cropped", "SVHN is a 1.5 GB download."))


def get(name: str) -> DatasetSpec:
  spec = plugins.load("dataset", name, "input.name")
  if not isinstance(spec, DatasetSpec):
    raise ValueError(f"input.name={name!r} is a {type(spec).__name__}, not "
                     "a ssl_jax.data.registry.DatasetSpec.")
  return spec


def default_dirs(name: str) -> list[pathlib.Path]:
  """Where to look for `name`'s files without input.data_dir:
  $SSL_JAX_DATA_DIR[/name], ../shared/data/name, then its `extra_dirs`; an
  import path's folder name is its last part ('my_lab.data.blobs': blobs)."""
  spec = get(name)
  name = name.replace(":", ".").rsplit(".", 1)[-1]
  dirs = []
  if os.environ.get("SSL_JAX_DATA_DIR"):
    root = pathlib.Path(os.environ["SSL_JAX_DATA_DIR"])
    dirs += [root / name, root]
  dirs += [pathlib.Path("../shared/data") / name,
           _REPO_ROOT.parent / "shared" / "data" / name]
  return dirs + [pathlib.Path(d) for d in spec.extra_dirs]
