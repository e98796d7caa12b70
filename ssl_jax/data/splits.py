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
