"""Labeled / unlabeled / validation splits of a training set.

A split is drawn once from the config's seed, saved in the workdir as
`split.npz`, and reused when the run resumes.
"""
import pathlib

import numpy as np


def make_split(labels: np.ndarray, labels_per_class: int, val_size: int,
               seed: int) -> dict[str, np.ndarray]:
  """Draws validation, labeled and unlabeled index sets (disjoint, sorted).

  Args:
    labels: int labels of the whole training set.
    labels_per_class: labeled examples per class; -1 labels every example
      outside the validation set.
    val_size: examples held out (uniformly at random) for validation.
    seed: fixes the draw.
  """
  n = len(labels)
  rng = np.random.default_rng(seed)
  order = rng.permutation(n)
  val, rest = order[:val_size], order[val_size:]
  if labels_per_class < 0:
    labeled = rest
  else:
    labeled = []
    for c in np.unique(labels):
      members = rest[labels[rest] == c]  # Already in random order.
      if len(members) < labels_per_class:
        raise ValueError(f"Class {c} has {len(members)} examples outside the "
                         f"validation set, fewer than labels_per_class="
                         f"{labels_per_class}.")
      labeled.append(members[:labels_per_class])
    labeled = np.concatenate(labeled)
  unlabeled = np.setdiff1d(rest, labeled)
  return {"labeled": np.sort(labeled), "unlabeled": np.sort(unlabeled),
          "val": np.sort(val)}


def imbalanced_subset(labels: np.ndarray, classes, drop_fraction: float,
                      seed: int) -> np.ndarray:
  """Sorted indices kept after dropping `drop_fraction` of some classes.

  Builds the seeds' class-imbalance set (90% of the cats and dogs removed):
  of each class in `classes`, exactly round(drop_fraction * count) examples,
  drawn from `seed`, go; every other example stays.
  """
  if not 0 <= drop_fraction <= 1:
    raise ValueError(f"drop_fraction must be in [0, 1], got {drop_fraction}.")
  rng = np.random.default_rng(seed)
  keep = np.ones(len(labels), bool)
  for c in sorted(set(classes)):
    members = np.flatnonzero(labels == c)
    if not len(members):
      raise ValueError(f"Class {c} has no examples to drop.")
    keep[rng.choice(members, round(drop_fraction * len(members)),
                    replace=False)] = False
  return np.flatnonzero(keep)


def balancing_plan(labels: np.ndarray) -> np.ndarray:
  """Extra copies each class 0..max(labels) needs to match the largest."""
  counts = np.bincount(labels)
  if not counts.all():
    raise ValueError(f"Classes {np.flatnonzero(counts == 0).tolist()} have no "
                     "examples to copy.")
  return counts.max() - counts


def oversampling_indices(labels: np.ndarray, seed: int) -> np.ndarray:
  """Sorted positions in `labels` to copy so that all classes are equal.

  Only the extra copies come back, apart from the originals, so a caller can
  augment just the copies as the seeds did. Every example of a class is
  copied the same number of times, plus once more for a subset drawn from
  `seed` that makes up the remainder: no image is seen (augmented) much more
  often than its classmates.
  """
  rng = np.random.default_rng(seed)
  extra = []
  for c, need in enumerate(balancing_plan(labels)):
    members = np.flatnonzero(labels == c)
    rounds, rest = divmod(need, len(members))
    extra += [np.tile(members, rounds), rng.choice(members, rest, replace=False)]
  return np.sort(np.concatenate(extra))


def load_or_make_split(workdir: str, labels: np.ndarray, labels_per_class: int,
                       val_size: int, seed: int, write: bool = True):
  """Returns the split saved in `workdir`, or draws and saves a new one.

  A saved split drawn with other settings is an error rather than a silent
  change of the labeled set halfway through a run.
  """
  path = pathlib.Path(workdir) / "split.npz"
  settings = np.array([len(labels), labels_per_class, val_size, seed])
  if path.exists():
    with np.load(path) as saved:
      if not np.array_equal(saved["settings"], settings):
        raise ValueError(
            f"{path} was drawn with (dataset size, labels_per_class, val_size,"
            f" seed) = {saved['settings'].tolist()}, but the config asks for "
            f"{settings.tolist()}. Use a new workdir for a new split.")
      return {k: saved[k] for k in ("labeled", "unlabeled", "val")}
  split = make_split(labels, labels_per_class, val_size, seed)
  if write:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, settings=settings, **split)
    tmp.replace(path)  # Atomic: a killed run never leaves half a split.
  return split
