"""From a config to host arrays per split, and each epoch's batch indices.

The indices are drawn on the device from (seed, epoch); `feeds.py` turns
them into batches, gathered on the device or streamed from the host, so
both paths see the same batches in the same order.
"""
import dataclasses
import functools
import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax.data import image_datasets
from ssl_jax.data import rows
from ssl_jax.data import splits


INFO_FILE = "data_info.json"


@dataclasses.dataclass(frozen=True)
class DataInfo:
  num_classes: int
  class_names: tuple[str, ...]
  image_shape: tuple[int, ...]
  mean: np.ndarray  # Per-channel pixel mean of the training images, in [0, 1].
  std: np.ndarray


def load(config, workdir, write_split: bool, unlabeled: bool = False):
  """Returns ({split: {'image', 'label'[, 'mask']}}, DataInfo).

  Splits: 'train' (the labeled examples), 'test', 'val' when
  `config.input.val_size > 0`, and with `unlabeled` the pool for the
  unlabeled losses: the training examples outside 'train' and 'val' (their
  labels kept), then the dataset's own unlabeled images where it has some
  (STL-10's 'unlabelled' split), with label -1, never read (masked out of the
  class loss). Eval splits ('test', 'val') are padded to a multiple of
  `eval_batch_size`, with 'mask' 0 on the padding. With
  `input.drop_fraction`, that fraction of each of `input.drop_classes` is
  removed from 'train'; with `input.rebalance`, copies of the smaller
  classes are appended until all are equal, flagged by 'copy' = 1 for the
  task to augment. The channel statistics are those of the dataset's whole
  train split, not of its unlabeled split.
  """
  cfg = config.input
  if cfg.rebalance and unlabeled:  # Such tasks read no 'copy' flag.
    raise ValueError("input.rebalance is for supervised classification runs, "
                     "not for a run that also trains on unlabeled images.")
  # Images stay in their files until read, where the source allows, unless
  # the run is on the device path: train.build reads them whole for that.
  ds = image_datasets.load(cfg.name, cfg.data_dir, cfg.source, unlabeled,
                           cfg.check_files, lazy=cfg.pipeline != "device")
  split = splits.load_or_make_split(workdir, ds.train_labels,
                                    cfg.labels_per_class, cfg.val_size,
                                    config.seed, write=write_split)
  pick = lambda idx: {"image": rows.take(ds.train_images, idx),
                      "label": ds.train_labels[idx]}
  n_test = cfg.max_test_examples or len(ds.test_labels)
  labeled = split["labeled"]
  if cfg.get("drop_fraction", 0.0):
    labeled = labeled[splits.imbalanced_subset(
        ds.train_labels[labeled], cfg.drop_classes, cfg.drop_fraction,
        config.seed)]
  data = {"train": pick(labeled),
          "test": pad_eval({"image": rows.take(ds.test_images,
                                               slice(0, n_test)),
                            "label": ds.test_labels[:n_test]},
                           cfg.eval_batch_size)}
  if cfg.rebalance:
    data["train"] = rebalanced(data["train"], config.seed)
  if cfg.val_size:
    data["val"] = pad_eval(pick(split["val"]), cfg.eval_batch_size)
  if unlabeled:
    pool = pick(split["unlabeled"])
    if ds.unlabeled_images is not None:
      extra = ds.unlabeled_images
      pool = {"image": rows.concat([pool["image"], extra]),
              "label": np.concatenate([pool["label"],
                                       np.full(len(extra), -1, np.int32)])}
    data["unlabeled"] = pool
  mean, std = channel_stats(ds.train_images)
  info = DataInfo(ds.num_classes, ds.class_names, ds.image_shape, mean, std)
  if write_split:
    write_info(workdir, info)
  return data, info


def write_info(workdir, info: DataInfo):
  """`data_info.json`: what inference needs of the data (classes, image
  shape, channel statistics), so `tools/predict.py` needs no dataset."""
  path = pathlib.Path(workdir) / INFO_FILE
  if not path.exists():  # A pure function of the dataset: written once.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({
        "num_classes": info.num_classes, "class_names": list(info.class_names),
        "image_shape": list(info.image_shape), "mean": info.mean.tolist(),
        "std": info.std.tolist()}, indent=2))
    tmp.replace(path)


def read_info(workdir) -> DataInfo:
  d = json.loads((pathlib.Path(workdir) / INFO_FILE).read_text())
  return DataInfo(d["num_classes"], tuple(d["class_names"]),
                  tuple(d["image_shape"]), np.array(d["mean"], np.float32),
                  np.array(d["std"], np.float32))


def channel_stats(images) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and std of uint8 images (an array or `rows.Rows`), in
  [0, 1] units (float32).

  Sums of pixels and of their squares in float64 chunks through BLAS
  (ones @ x, x.T @ x): exact, as every partial sum is an integer below
  2**53, and ~10x faster than per-channel histograms (0.4 s for CIFAR-10).
  Chunks of images, so `Rows` are read a chunk at a time. The std is at
  least one grey level (1/255), so a constant channel standardises to
  zeros rather than to inf.
  """
  if images.dtype != np.uint8:
    raise TypeError(f"Expected uint8 images, got {images.dtype}.")
  channels = images.shape[-1]
  per_image = int(np.prod(images.shape[1:])) // channels
  chunk = max(1, (1 << 18) // per_image)
  total, gram = 0.0, 0.0
  for i in range(0, len(images), chunk):
    part = images[i:i + chunk].reshape(-1, channels).astype(np.float64)
    total = total + np.ones(len(part)) @ part
    gram = gram + part.T @ part
  n = len(images) * per_image
  mean = total / n
  var = np.diag(gram) / n - mean**2
  std = np.sqrt(np.maximum(var, 1.0))  # At least one grey level.
  return (mean / 255).astype(np.float32), (std / 255).astype(np.float32)


def rebalanced(arrays: dict, seed: int) -> dict:
  """`arrays` plus copies of the smaller classes' examples, flagged 'copy'."""
  extra = splits.oversampling_indices(arrays["label"], seed)
  out = {k: rows.concat([v, rows.take(v, extra)]) for k, v in arrays.items()}
  out["copy"] = np.repeat(np.array([0, 1], np.uint8),
                          [len(arrays["label"]), len(extra)])
  return out


def pad_eval(arrays: dict, multiple: int) -> dict:
  """Pads an eval split to a multiple of the batch size, with a 0/1 mask."""
  n = len(arrays["label"])
  pad = -n % multiple
  out = {k: rows.concat([v, rows.zeros(pad, v)]) for k, v in arrays.items()}
  out["mask"] = np.concatenate([np.ones(n, np.float32),
                                np.zeros(pad, np.float32)])
  return out


# How an epoch draws its batches (`input.sampling`).
SAMPLINGS = ("permutation", "replacement")


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def epoch_indices(key: jax.Array, n: int, steps: int, batch_size: int,
                  sampling: str = "permutation") -> jax.Array:
  """(steps, batch_size) example indices for one epoch.

  'permutation': consecutive random permutations of range(n), so every
  example is seen equally often even when an epoch is longer than one pass
  (small labeled sets). 'replacement': every index drawn uniformly on its
  own, as MemN2N's authors' code draws its batches. Depends only on `key`,
  so a resumed run sees the same batches.
  """
  if sampling == "replacement":
    return jax.random.randint(key, (steps, batch_size), 0, n)
  passes = math.ceil(steps * batch_size / n)
  perms = jax.vmap(lambda p: jax.random.permutation(
      jax.random.fold_in(key, p), n))(jnp.arange(passes))
  return perms.reshape(-1)[:steps * batch_size].reshape(steps, batch_size)


def stream_indices(key: jax.Array, streams, steps: int,
                   sampling: str = "permutation") -> jax.Array:
  """(steps, total batch) indices drawing from consecutive blocks of examples.

  `streams` is ((n, batch_size), ...): block i holds the next n examples of
  the train arrays; each step takes batch_size of them (epoch_indices within
  the block, so small blocks cycle). Stream 0 uses `key` itself, so a
  single stream equals `epoch_indices(key, ...)`; `sampling` as there.
  """
  columns, offset = [], 0
  for i, (n, batch_size) in enumerate(streams):
    if batch_size:
      k = key if i == 0 else jax.random.fold_in(key, i)
      columns.append(epoch_indices(k, n, steps, batch_size, sampling)
                     + offset)
    offset += n
  return jnp.concatenate(columns, axis=1)


def eval_indices(n: int, batch_size: int) -> np.ndarray:
  """(n // batch_size, batch_size) indices of a padded eval split, in order."""
  return np.arange(n, dtype=np.int32).reshape(-1, batch_size)
