"""Image classification datasets as uint8 NumPy arrays, from files or TFDS.

`load(name, data_dir, source)` returns an `ImageDataset` of a dataset in
`ssl_jax.data.registry`; image size, channels and class count come from the data,
so training code never hard-codes them.
"""
import dataclasses
import pathlib

from absl import logging
import numpy as np

from ssl_jax.data import registry
from ssl_jax.data import rows


@dataclasses.dataclass(frozen=True)
class ImageDataset:
  """Images uint8 NHWC, in host memory or, loaded with `lazy`, `Rows` read
  from storage when indexed; labels int32, in host memory."""
  train_images: np.ndarray | rows.Rows
  train_labels: np.ndarray
  test_images: np.ndarray | rows.Rows
  test_labels: np.ndarray
  class_names: tuple[str, ...]
  # The dataset's own split of unlabeled images; None where it has none.
  unlabeled_images: np.ndarray | rows.Rows | None = None

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.train_images.shape[1:])


def load(name: str, data_dir: str = "", source: str = "auto",
         unlabeled: bool = True, check_files: bool = True,
         lazy: bool = False) -> ImageDataset:
  """Loads dataset `name` from `data_dir`, the default places, or TFDS.

  Args:
    name: a key of `ssl_jax.data.registry`.
    data_dir: for a dataset with a file reader, the directory of its original
      files ('' for the defaults); for a TFDS-only dataset, or with
      source='tfds', TFDS's data_dir ('' for TFDS's default).
    source: 'files' (local files only), 'tfds' (TFDS only), or 'auto'
      (local files where the dataset has a reader, then TFDS).
    unlabeled: also read the dataset's unlabeled split, where it has one.
    check_files: local files must be the official ones (record counts, and
      md5 sums where published); False for files of your own.
    lazy: leave the images where they are stored, as `rows.Rows`, where the
      source reads rows by index: CIFAR-10's files, and TFDS datasets
      prepared as ArrayRecord. Other sources load into memory.
  """
  spec = registry.get(name)
  if source not in ("auto", "files", "tfds"):
    raise ValueError(f"input.source must be auto|files|tfds, got {source!r}.")
  if source == "files" and spec.reader is None:
    raise ValueError(f"Dataset {name!r} has no reader for local files "
                     f"(input.source=files); use input.source=auto or tfds. "
                     f"{spec.how_to_get}")
  looked = []
  if source != "tfds" and spec.reader is not None:
    dirs = [pathlib.Path(data_dir)] if data_dir else registry.default_dirs(name)
    for d in dirs:
      looked.append(str(d))
      arrays = spec.reader(d, check_files, lazy)
      if arrays is not None:
        return _checked(name, spec, ImageDataset(*arrays))
  if source != "files":
    if looked:  # TFDS retries a failed download for ~3 minutes: say why.
      logging.warning("Dataset %r not in %s; trying TFDS (without a network "
                      "it fails after a few minutes; input.source=files fails "
                      "at once).", name, "; ".join(looked))
    # With a reader, data_dir holds the original files, not TFDS's data.
    tfds_dir = data_dir if source == "tfds" or spec.reader is None else ""
    try:
      ds = _load_tfds(spec, tfds_dir, unlabeled, lazy)
    except Exception as e:  # pylint: disable=broad-except
      looked.append(f"TFDS {spec.tfds_name!r} ({type(e).__name__}: {e}) with "
                    f"data_dir {tfds_dir or _default_tfds_dir()}")
    else:
      return _checked(name, spec, ds)
  raise FileNotFoundError(
      f"Dataset {name!r} not found. Looked in: {'; '.join(looked)}. "
      f"{spec.how_to_get}")


def _checked(name: str, spec: registry.DatasetSpec,
             ds: ImageDataset) -> ImageDataset:
  """`ds`, once its images and classes match what the registry declares."""
  shapes = {ds.image_shape, tuple(ds.test_images.shape[1:])}
  if ds.unlabeled_images is not None:
    shapes.add(tuple(ds.unlabeled_images.shape[1:]))
  if shapes != {spec.image_shape} or ds.num_classes != spec.num_classes:
    raise ValueError(
        f"Dataset {name!r}: loaded images of shapes {sorted(shapes)} and "
        f"{ds.num_classes} classes, but ssl_jax/data/registry.py declares "
        f"{spec.image_shape} and {spec.num_classes}.")
  return ds


def _default_tfds_dir() -> str:
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    return "TFDS's default"
  return tfds.core.constants.get_default_data_dir()


def _load_tfds(spec: registry.DatasetSpec, data_dir: str, unlabeled: bool,
               lazy: bool) -> ImageDataset:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = tfds.builder(spec.tfds_name, data_dir=data_dir or None)
  builder.download_and_prepare()
  names = tuple(builder.info.features["label"].names)
  if lazy:
    try:
      return _tfds_rows(builder, spec, unlabeled, names)
    except NotImplementedError:  # Not prepared as ArrayRecord.
      logging.warning(
          "TFDS %r is stored without random access (%s), so it loads into "
          "host memory. `tfds build %s --file_format=array_record` lets the "
          "stream path read it from disk.", spec.tfds_name,
          builder.info.file_format, spec.tfds_name)

  def read(split, keys=("image", "label")):  # -> one array per key
    # Batches concatenated, not batch_size=-1: that aborts the process under
    # tfds.testing.mock_data, the offline test of this path.
    batches = list(tfds.as_numpy(builder.as_dataset(split=split,
                                                    batch_size=10_000)))
    return [np.concatenate([b[k] for b in batches]) for k in keys]

  def labeled(split):  # -> (images uint8, labels int32)
    images, labels = read(split)
    return images.astype(np.uint8, copy=False), labels.astype(np.int32)

  extra = None
  if unlabeled and spec.unlabeled_split:  # Their TFDS labels are all -1.
    extra = read(spec.unlabeled_split, ("image",))[0].astype(np.uint8,
                                                            copy=False)
  return ImageDataset(*labeled(spec.train_split), *labeled(spec.test_split),
                      class_names=names, unlabeled_images=extra)


def _tfds_rows(builder, spec: registry.DatasetSpec, unlabeled: bool,
               names: tuple[str, ...]) -> ImageDataset:
  """The splits as `Rows` over TFDS's random-access (ArrayRecord) source;
  labels are read up front with the images left encoded."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  def get(source, idx):  # ArrayRecord reads a batch at once; any sequence.
    many = getattr(source, "__getitems__", None)
    return many(list(idx)) if many else [source[i] for i in idx]

  def images(split):
    source = builder.as_data_source(split)

    def read(idx):
      return np.stack([e["image"] for e in get(source, idx.tolist())])
    return rows.Rows(read, len(source), spec.image_shape, np.uint8,
                     f"TFDS {spec.tfds_name}[{split}]")

  def labels(split):
    source = builder.as_data_source(
        split, decoders={"image": tfds.decode.SkipDecoding()})
    chunk = 4096
    return np.array([e["label"] for i in range(0, len(source), chunk)
                     for e in get(source, range(i, min(i + chunk,
                                                    len(source))))], np.int32)

  extra = (images(spec.unlabeled_split)
           if unlabeled and spec.unlabeled_split else None)
  return ImageDataset(images(spec.train_split), labels(spec.train_split),
                      images(spec.test_split), labels(spec.test_split),
                      class_names=names, unlabeled_images=extra)
