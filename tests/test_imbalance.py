"""The seeds' class-imbalance set and the oversampling that rebalances it."""
import numpy as np
import pytest

from ssl_jax.data import splits


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
