"""TFDS-only datasets (STL-10, SVHN) offline, on TFDS's mock data.

Offline, TFDS has no metadata for these builders, so its mock accepts any
split name and gives every split the same examples. `_mock_splits` instead
serves only the splits each builder's code defines, with their own sizes and
images that say which split and row they are: the tests then see which
splits were read and where each pool row came from.
"""
import contextlib
import pathlib

import numpy as np
import pytest

from ssl_jax import config_files
from ssl_jax.data import feeds
from ssl_jax.data import image_datasets
from ssl_jax.data import input_pipeline
from ssl_jax.data import rows
from ssl_jax.train import loop

_CONFIG = pathlib.Path(__file__).resolve().parents[1] / "configs/supervised.py"
# Split sizes here; the names are those of the TFDS builders' code.
_SPLITS = {"stl10": {"train": 30, "test": 8, "unlabelled": 120},
           "svhn_cropped": {"train": 30, "test": 8, "extra": 5}}
_SHAPES = {"stl10": (96, 96, 3), "svhn_cropped": (32, 32, 3)}


def _split(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(images, labels) of a mock split: pixel (0, 0) of an image is (split
  number, row), its label row % 10, or -1 in the 'unlabelled' split as
  TFDS's STL-10 has it."""
  n = _SPLITS[name][split]  # KeyError: a split TFDS lacks.
  images = np.zeros((n, *_SHAPES[name]), np.uint8)
  images[:, 0, 0, 0] = list(_SPLITS[name]).index(split)
  images[:, 0, 0, 1] = np.arange(n)
  labels = np.full(n, -1) if split == "unlabelled" else np.arange(n) % 10
  return images, labels.astype(np.int64)


class _Source:
  """A random-access (ArrayRecord-like) mock split that logs the rows whose
  images it decodes into `decoded`."""

  def __init__(self, name, split, skip_images, decoded):
    self.images, self.labels = _split(name, split)
    self.split, self.skip, self.decoded = split, skip_images, decoded

  def __len__(self):
    return len(self.labels)

  def __getitem__(self, i):
    if not self.skip:
      self.decoded.append((self.split, int(i)))
    return {"image": b"" if self.skip else self.images[i],
            "label": self.labels[i]}


@contextlib.contextmanager
def _mock_splits(random_access: bool = False):
  """Mocks TFDS with `_split`'s splits: prepared as ArrayRecord (random
  access) or not. Yields (the (dataset, split) pairs read, the (split, row)
  pairs decoded from random-access sources)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  read, decoded = [], []

  def as_dataset(self, split, **kwargs):
    del kwargs
    read.append((self.name, str(split)))
    images, labels = _split(self.name, str(split))
    return tf.data.Dataset.from_tensor_slices({"image": images,
                                               "label": labels})

  def as_data_source(self, split, decoders=None, **kwargs):
    del kwargs
    if not random_access:
      raise NotImplementedError("Random access data source for file format "
                                "tfrecord is not supported.")
    read.append((self.name, str(split)))
    return _Source(self.name, str(split), decoders is not None, decoded)

  with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE,
                              as_dataset_fn=as_dataset,
                              as_data_source_fn=as_data_source):
    yield read, decoded


@pytest.mark.parametrize("name, tfds_name", [("stl10", "stl10"),
                                             ("svhn", "svhn_cropped")])
def test_tfds_only_dataset_loads(name, tfds_name):
  with _mock_splits() as (read, _):
    ds = image_datasets.load(name)
  sizes, shape = _SPLITS[tfds_name], _SHAPES[tfds_name]
  assert ds.image_shape == shape and ds.num_classes == 10
  assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32
  assert ds.train_images.shape == (sizes["train"], *shape)
  assert ds.test_images.shape == (sizes["test"], *shape)
  np.testing.assert_array_equal(ds.train_images[:, 0, 0, 0], 0)
  np.testing.assert_array_equal(ds.test_images[:, 0, 0, 0], 1)
  np.testing.assert_array_equal(ds.test_labels, np.arange(sizes["test"]) % 10)
  if name == "stl10":
    assert ds.unlabeled_images.shape == (sizes["unlabelled"], *shape)
    assert ds.unlabeled_images.dtype == np.uint8
  else:  # SVHN's 'extra' split is labeled: never read as unlabeled images.
    assert ds.unlabeled_images is None
  assert sorted(s for _, s in read) == sorted(set(sizes) - {"extra"})


def _config(name, **fields):
  config = config_files.load(_CONFIG, "quick")
  config.input.update({"name": name, "labels_per_class": 1, "val_size": 5,
                       "eval_batch_size": 4, "max_test_examples": 0, **fields})
  return config


@pytest.mark.parametrize("random_access", [False, True])
def test_stl10_unlabeled_split_joins_the_pool(tmp_path, random_access):
  """With or without random access (`Rows` or arrays), the same pool."""
  with _mock_splits(random_access) as (_, decoded):
    data, info = input_pipeline.load(_config("stl10"), tmp_path, False,
                                     unlabeled=True)
    pool = data["unlabeled"]
    # Random access: rows stay in storage until read.
    assert isinstance(pool["image"], rows.Rows) == random_access
    assert {s for s, _ in decoded} <= {"train"}  # Channel stats only.
    images = np.asarray(pool["image"])
    seen = np.concatenate([np.asarray(data["train"]["image"])[:, 0, 0, 1],
                           np.asarray(data["val"]["image"])[:5, 0, 0, 1]])
  # 30 train images: 10 labeled (one per class), 5 for val, 15 in the pool.
  extra = _SPLITS["stl10"]["unlabelled"]
  assert images.shape == (15 + extra, 96, 96, 3)
  assert pool["label"].dtype == np.int32 and set(pool) == {"image", "label"}
  split_of, row = images[:, 0, 0, 0], images[:, 0, 0, 1]
  np.testing.assert_array_equal(pool["label"] == -1, split_of == 2)
  np.testing.assert_array_equal(np.sort(row[split_of == 2]), np.arange(extra))
  from_train = split_of == 0
  np.testing.assert_array_equal(pool["label"][from_train],
                                row[from_train] % 10)
  seen = np.concatenate([row[from_train], seen])
  np.testing.assert_array_equal(np.sort(seen), np.arange(30))
  assert info.num_classes == 10 and info.image_shape == (96, 96, 3)
  with _mock_splits():  # Channel statistics from the train split only.
    train = image_datasets.load("stl10", unlabeled=False).train_images
  np.testing.assert_array_equal(info.mean,
                                input_pipeline.channel_stats(train)[0])


def test_svhn_pool_is_the_rest_of_train(tmp_path):
  with _mock_splits():
    data, _ = input_pipeline.load(_config("svhn"), tmp_path, False,
                                  unlabeled=True)
  assert data["unlabeled"]["image"].shape == (15, 32, 32, 3)
  np.testing.assert_array_equal(data["unlabeled"]["image"][:, 0, 0, 0], 0)
  assert data["unlabeled"]["label"].min() >= 0


def test_supervised_run_skips_the_unlabeled_split(tmp_path):
  with _mock_splits() as (read, _):
    data, _ = input_pipeline.load(_config("stl10"), tmp_path, False)
  assert "unlabeled" not in data and ("stl10", "unlabelled") not in read


def test_rebalance_with_unlabeled_images_is_an_error(tmp_path):
  with pytest.raises(ValueError, match="also trains on unlabeled images"):
    input_pipeline.load(_config("stl10", rebalance=True), tmp_path, False,
                        unlabeled=True)


def test_tfds_only_dataset_from_files_is_an_error():
  with pytest.raises(ValueError, match=r"'stl10' has no reader.*tfds build "
                     r"stl10"):
    image_datasets.load("stl10", source="files")


@pytest.mark.parametrize("name, tfds_name", [("stl10", "stl10"),
                                             ("svhn", "svhn_cropped")])
def test_missing_tfds_dataset_says_what_it_tried(tmp_path, monkeypatch, name,
                                                 tfds_name):
  """Offline and not prepared: the error names the TFDS dataset, the
  data_dir tried and how to get the data."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  def offline(*args, **kwargs):
    raise ConnectionError("no network (test)")

  for method in ("download", "download_and_extract"):
    monkeypatch.setattr(tfds.download.DownloadManager, method, offline)
  data_dir = str(tmp_path / "tfds")
  with pytest.raises(FileNotFoundError) as e:
    image_datasets.load(name, data_dir)
  message = str(e.value)
  assert f"TFDS {tfds_name!r} (ConnectionError: no network" in message
  assert f"data_dir {data_dir}" in message
  assert f"tfds build {tfds_name}" in message
  assert "--config.input.data_dir=TFDS_DATA_DIR" in message


def test_stl10_rotation_pretraining_streams(tmp_path, monkeypatch):
  """configs/stl10.py end to end on mock STL-10 prepared as ArrayRecord:
  the streaming path feeds it (the device path is not even constructible
  here), images are decoded only as batches need them (the unlabeled split
  is never read whole), and both heads train to finite numbers."""
  monkeypatch.setattr(feeds, "DeviceFeed", None)
  config = config_files.load(_CONFIG.with_name("stl10.py"), "quick")
  config.update({"num_epochs": 1, "steps_per_epoch": 2})
  with _mock_splits(random_access=True) as (read, decoded):
    last = loop.train_and_evaluate(config, tmp_path)
  assert {s for _, s in read} == {"test", "train", "unlabelled"}
  # At most the rows of 2 steps, and of the batch that sizes the metrics.
  unlabeled = [r for s, r in decoded if s == "unlabelled"]
  assert 0 < len(unlabeled) <= 3 * config.input.unlabeled_batch_size
  assert last["step"] == 2
  for key in ("train_rotation_loss", "train_class_loss", "test_accuracy",
              "test_rotation_accuracy", "test_knn_accuracy"):
    assert np.isfinite(last[key]), key
