"""Dataset readers on hand-made files, splits, and missing-data errors."""
import gzip

import jax
import numpy as np
import pytest

from ssl_jax.data import augment
from ssl_jax.data import cifar10
from ssl_jax.data import fashion_mnist
from ssl_jax.data import image_datasets
from ssl_jax.data import input_pipeline
from ssl_jax.data import splits


def _cifar_records(labels, seed):
  """Records in the documented layout, and the images they must decode to."""
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
  records = [bytes([l]) + img[:, :, 0].tobytes() + img[:, :, 1].tobytes()
             + img[:, :, 2].tobytes() for l, img in zip(labels, images)]
  return b"".join(records), images


def test_cifar10_reader_on_hand_made_files(tmp_path):
  expected = {}
  for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)]
                           + ["test_batch.bin"]):
    labels = [(i + j) % 10 for j in range(3)]
    raw, images = _cifar_records(labels, seed=i)
    (tmp_path / name).write_bytes(raw)
    expected[name] = (images, labels)
  (tmp_path / "batches.meta.txt").write_text("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n")
  ds = image_datasets.load("cifar10", str(tmp_path), source="files",
                           check_files=False)
  assert ds.train_images.shape == (15, 32, 32, 3)
  assert ds.train_images.dtype == np.uint8
  np.testing.assert_array_equal(ds.train_images[:3],
                                expected["data_batch_1.bin"][0])
  np.testing.assert_array_equal(ds.train_images[12:],
                                expected["data_batch_5.bin"][0])
  np.testing.assert_array_equal(ds.test_images, expected["test_batch.bin"][0])
  np.testing.assert_array_equal(ds.test_labels, [5, 6, 7])
  assert ds.train_labels.tolist()[:6] == [0, 1, 2, 1, 2, 3]
  assert ds.class_names[0] == "a" and ds.num_classes == 10
  # A single known pixel, decoded by hand from the byte layout.
  raw = (tmp_path / "test_batch.bin").read_bytes()
  r, g, b = raw[1 + 5 * 32 + 7], raw[1 + 1024 + 5 * 32 + 7], raw[
      1 + 2048 + 5 * 32 + 7]
  assert ds.test_images[0, 5, 7].tolist() == [r, g, b]


def test_cifar10_truncated_file_names_the_file(tmp_path):
  path = tmp_path / "data_batch_1.bin"
  path.write_bytes(b"\x01" * 3000)
  with pytest.raises(ValueError, match="data_batch_1.bin.*3000 bytes"):
    cifar10.read_batch_file(path)


def test_fashion_mnist_idx_reader(tmp_path):
  rng = np.random.default_rng(0)
  for prefix, n in (("train", 6), ("t10k", 4)):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    header = lambda ndim, shape: (b"\0\0\x08" + bytes([ndim]) + b"".join(
        d.to_bytes(4, "big") for d in shape))
    with gzip.open(tmp_path / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
      f.write(header(3, images.shape) + images.tobytes())
    (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(
        header(1, labels.shape) + labels.tobytes())
    if prefix == "t10k":
      test_images, test_labels = images, labels
  ds = image_datasets.load("fashion_mnist", str(tmp_path), source="files",
                           check_files=False)
  assert ds.image_shape == (28, 28, 1) and ds.num_classes == 10
  np.testing.assert_array_equal(ds.test_images[..., 0], test_images)
  np.testing.assert_array_equal(ds.test_labels, test_labels)
  bad = tmp_path / "bad-idx"
  bad.write_bytes(b"\0\0\x08\x01" + (10).to_bytes(4, "big") + b"\0" * 3)
  with pytest.raises(ValueError, match="bad-idx.*shape"):
    fashion_mnist.read_idx(bad)


def test_missing_dataset_says_where_it_looked(tmp_path):
  with pytest.raises(FileNotFoundError) as e:
    image_datasets.load("cifar10", str(tmp_path / "nowhere"), source="files")
  assert str(tmp_path / "nowhere") in str(e.value)
  assert "cifar-10-binary.tar.gz" in str(e.value)


@pytest.mark.parametrize("name, shape", [("cifar10", (32, 32, 3)),
                                         ("fashion_mnist", (28, 28, 1))])
def test_tfds_source_returns_every_example(name, shape):
  """The TFDS path (no network here: TFDS's own mock data) gives each split's
  examples, in TFDS's order, as the file readers' dtypes and shapes."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  with tfds.testing.mock_data(num_examples=13,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    ds = image_datasets.load(name, source="tfds")
    builder = tfds.builder(name)
    for split, images, labels in (("train", ds.train_images, ds.train_labels),
                                  ("test", ds.test_images, ds.test_labels)):
      examples = list(tfds.as_numpy(builder.as_dataset(split=split)))
      assert images.dtype == np.uint8 and labels.dtype == np.int32
      assert images.shape == (13, *shape)
      np.testing.assert_array_equal(images, [e["image"] for e in examples])
      np.testing.assert_array_equal(labels, [e["label"] for e in examples])
  assert ds.num_classes == 10 and ds.image_shape == shape


@pytest.mark.parametrize("source", ["tfds", "auto"])
def test_tfds_source_offline_gets_as_far_as_the_download(tmp_path, caplog,
                                                        monkeypatch, source):
  """With no network, the TFDS path fails at the download itself (so every
  package that TFDS needs on the way is installed), and the error says so;
  'auto' warns before the slow download, naming where it looked."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  def offline(*args, **kwargs):
    raise ConnectionError("no network (test)")

  monkeypatch.setattr(tfds.core.constants, "DATA_DIR", str(tmp_path))
  for method in ("download", "download_and_extract"):
    monkeypatch.setattr(tfds.download.DownloadManager, method, offline)
  nowhere = str(tmp_path / "nowhere")
  with pytest.raises(FileNotFoundError,
                     match=r"TFDS 'cifar10' \(ConnectionError: no network"):
    image_datasets.load("cifar10", nowhere, source=source)
  warned = [r.getMessage() for r in caplog.records if "trying TFDS" in
            r.getMessage()]
  assert len(warned) == (source == "auto")
  assert all(nowhere in w for w in warned)


def test_split_has_k_per_class_and_is_reproducible(tmp_path):
  labels = np.repeat(np.arange(10), 50)
  np.random.default_rng(0).shuffle(labels)
  split = splits.load_or_make_split(tmp_path, labels, 20, 30, seed=3)
  np.testing.assert_array_equal(np.bincount(labels[split["labeled"]]),
                                np.full(10, 20))
  assert len(split["val"]) == 30
  everything = np.concatenate(list(split.values()))
  assert len(np.unique(everything)) == len(labels) == len(everything)
  again = splits.make_split(labels, 20, 30, seed=3)
  for k in split:
    np.testing.assert_array_equal(split[k], again[k])
  other = splits.make_split(labels, 20, 30, seed=4)
  assert not np.array_equal(other["labeled"], split["labeled"])
  # Saved and reused; different settings in the same workdir are an error.
  reread = splits.load_or_make_split(tmp_path, labels, 20, 30, seed=3)
  np.testing.assert_array_equal(reread["labeled"], split["labeled"])
  with pytest.raises(ValueError, match="new workdir"):
    splits.load_or_make_split(tmp_path, labels, 10, 30, seed=3)


def test_crop_and_flip_against_numpy():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)
  key = jax.random.key(3)
  out = np.asarray(jax.jit(augment.random_crop, static_argnums=2)(
      key, images, 2))
  padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
  for img, pad in zip(out, padded):
    windows = [pad[i:i + 8, j:j + 8] for i in range(5) for j in range(5)]
    assert any(np.array_equal(img, w) for w in windows)
  assert not np.array_equal(out, images)  # Some offsets are non-zero.
  np.testing.assert_array_equal(augment.random_crop(key, images, 0), images)
  flipped = np.asarray(jax.jit(augment.random_flip)(key, images))
  is_flip = [np.array_equal(f, i[:, ::-1]) for f, i in zip(flipped, images)]
  is_same = [np.array_equal(f, i) for f, i in zip(flipped, images)]
  assert all(a or b for a, b in zip(is_flip, is_same))
  assert 0 < sum(is_flip) < 16


def test_channel_stats_match_numpy():
  images = np.random.default_rng(0).integers(0, 256, (50, 7, 5, 3), np.uint8)
  images[..., 2] //= 4  # Channels with different statistics.
  mean, std = input_pipeline.channel_stats(images)
  pixels = images.reshape(-1, 3) / 255.0
  np.testing.assert_allclose(mean, pixels.mean(0), rtol=1e-6)
  np.testing.assert_allclose(std, pixels.std(0), rtol=1e-6)
  images[..., 1] = 7  # A constant channel: one grey level, not 0.
  np.testing.assert_allclose(input_pipeline.channel_stats(images)[1],
                             [pixels[:, 0].std(), 1 / 255, pixels[:, 2].std()],
                             rtol=1e-6)
  with pytest.raises(TypeError, match="uint8"):
    input_pipeline.channel_stats(images.astype(np.float32))
