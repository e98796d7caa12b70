"""The seeds' class-imbalance set, the oversampling that rebalances it, and
both wired into the input pipeline and the jitted inputs."""
import jax
import numpy as np
import pytest

from ssl_jax.data import input_pipeline
from ssl_jax.data import splits
from ssl_jax.tasks import classification

import helpers


def _cifar_like_labels():
  """10 classes x 5000, shuffled, like CIFAR-10's training labels."""
  labels = np.repeat(np.arange(10), 5000)
  np.random.default_rng(0).shuffle(labels)
  return labels


def test_imbalanced_subset_drops_exact_counts_reproducibly():
  labels = _cifar_like_labels()
  kept = splits.imbalanced_subset(labels, (3, 5), 0.9, seed=0)
  expected = np.full(10, 5000)
  expected[[3, 5]] = 500
  np.testing.assert_array_equal(np.bincount(labels[kept]), expected)
  assert len(kept) == 41000  # As in the seeds.
  assert np.all(np.diff(kept) > 0)  # Sorted, no repeats.
  others = np.flatnonzero((labels != 3) & (labels != 5))
  assert np.isin(others, kept).all()
  np.testing.assert_array_equal(
      splits.imbalanced_subset(labels, [5, 3], 0.9, seed=0), kept)
  assert not np.array_equal(
      splits.imbalanced_subset(labels, (3, 5), 0.9, seed=1), kept)
  # round(0.3 * 7) = 2 of 7 go.
  small = np.array([0] * 7 + [1] * 4)
  kept = splits.imbalanced_subset(small, (0,), 0.3, seed=0)
  assert np.bincount(small[kept]).tolist() == [5, 4]


def test_imbalanced_subset_rejects_bad_settings():
  labels = np.array([0, 0, 1, 1])
  with pytest.raises(ValueError, match="drop_fraction.*1.5"):
    splits.imbalanced_subset(labels, (0,), 1.5, seed=0)
  with pytest.raises(ValueError, match="Class 7"):
    splits.imbalanced_subset(labels, (7,), 0.5, seed=0)


def test_oversampling_makes_all_classes_equal():
  labels = _cifar_like_labels()
  kept_labels = labels[splits.imbalanced_subset(labels, (3, 5), 0.9, seed=0)]
  plan = splits.balancing_plan(kept_labels)
  assert plan.tolist() == [0, 0, 0, 4500, 0, 4500, 0, 0, 0, 0]
  extra = splits.oversampling_indices(kept_labels, seed=0)
  balanced = np.concatenate([kept_labels, kept_labels[extra]])
  np.testing.assert_array_equal(np.bincount(balanced), np.full(10, 5000))
  # 4500 copies of 500 images: each image copied exactly 9 times.
  assert set(np.bincount(extra).tolist()) <= {0, 9}
  assert np.all(np.diff(extra) >= 0)


def test_oversampling_remainder_is_spread_and_seeded():
  labels = np.array([0] * 100 + [1] * 7 + [2] * 100)
  assert splits.balancing_plan(labels).tolist() == [0, 93, 0]
  extra = splits.oversampling_indices(labels, seed=0)
  np.testing.assert_array_equal(
      np.bincount(np.concatenate([labels, labels[extra]])), [100, 100, 100])
  # 93 = 13 * 7 + 2: every image 13 or 14 times, two of them 14.
  copies = np.bincount(extra, minlength=107)[100:107]
  assert sorted(copies.tolist()) == [13] * 5 + [14] * 2
  np.testing.assert_array_equal(splits.oversampling_indices(labels, seed=0),
                                extra)
  others = [splits.oversampling_indices(labels, seed=s) for s in range(1, 4)]
  assert any(not np.array_equal(o, extra) for o in others)
  with pytest.raises(ValueError, match=r"\[1\]"):
    splits.balancing_plan(np.array([0, 2, 2]))


def _cnn_config(arg):
  config = helpers.load_config("cnn", arg)
  config.input.data_dir = str(helpers.CIFAR_DIR)
  return config


def test_load_drops_cats_and_dogs_then_rebalances(tmp_path):
  full, _ = input_pipeline.load(_cnn_config("quick"), tmp_path / "a", False)
  counts = np.bincount(full["train"]["label"], minlength=10)
  expected = counts.copy()
  expected[[3, 5]] -= np.round(0.9 * counts[[3, 5]]).astype(int)
  thin, _ = input_pipeline.load(_cnn_config("quick,imbalance"),
                                tmp_path / "b", False)
  np.testing.assert_array_equal(np.bincount(thin["train"]["label"]), expected)
  assert "copy" not in thin["train"]
  # Every kept image is one of the full set's, with its label.
  full_rows = {im.tobytes(): l for im, l in zip(full["train"]["image"],
                                                full["train"]["label"])}
  assert all(full_rows[im.tobytes()] == l for im, l in
             zip(thin["train"]["image"][::97], thin["train"]["label"][::97]))

  balanced, _ = input_pipeline.load(_cnn_config("quick,rebalance"),
                                    tmp_path / "c", False)
  train = balanced["train"]
  np.testing.assert_array_equal(np.bincount(train["label"]),
                                np.full(10, expected.max()))
  n = len(thin["train"]["label"])
  np.testing.assert_array_equal(train["copy"][:n], 0)
  np.testing.assert_array_equal(train["copy"][n:], 1)
  np.testing.assert_array_equal(train["image"][:n], thin["train"]["image"])
  # Mostly cats and dogs; the validation hold-out leaves the others a few
  # images apart, and they are topped up too.
  np.testing.assert_array_equal(np.bincount(train["label"][n:], minlength=10),
                                expected.max() - expected)


def test_only_the_copies_are_warped_under_jit():
  config = _cnn_config("quick,rebalance")
  config.input.augment.crop_padding = 0
  config.input.augment.flip = False
  images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), np.uint8)
  batch = {"image": images, "label": np.zeros(8, np.int32),
           "copy": np.array([0, 1] * 4, np.uint8)}
  mean, std = np.full(3, 0.5, np.float32), np.full(3, 0.25, np.float32)
  plain = (images / 255.0 - mean) / std
  inputs = lambda c: jax.jit(lambda b, r: classification.make(
      c, mean, std).inputs(b, r, True))(batch, jax.random.key(0))
  x = np.asarray(inputs(config))
  np.testing.assert_allclose(x[0::2], plain[0::2], atol=1e-5)
  assert all(np.abs(x[i] - plain[i]).max() > 0.5 for i in range(1, 8, 2))
  identity = config.input.rebalance_augment
  identity.max_degrees, identity.max_shift = 0.0, 0.0
  identity.brightness, identity.zoom = (1.0, 1.0), (1.0, 1.0)
  np.testing.assert_allclose(inputs(config), plain, atol=1e-5)


def test_rebalance_with_unlabeled_images_is_an_error(tmp_path):
  config = helpers.load_config("multitask", "quick")
  config.input.data_dir = str(helpers.CIFAR_DIR)
  config.input.rebalance = True
  with pytest.raises(ValueError, match="input.rebalance.*unlabeled images"):
    input_pipeline.load(config, tmp_path, False, unlabeled=True)
