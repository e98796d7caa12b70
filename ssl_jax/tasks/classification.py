"""Supervised image classification with optional per-example masks."""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax import losses
from ssl_jax.data import augment
from ssl_jax.data import input_pipeline
from ssl_jax.evals import class_report
from ssl_jax.models.heads import HeadSpec
from ssl_jax.tasks import Setup
from ssl_jax.tasks import Task

# input.standardize_stats naming the RGB statistics pretrained weights expect.
PRETRAINED_STATS = {"imagenet": (augment.IMAGENET_MEAN, augment.IMAGENET_STD),
                    "lite": (augment.LITE_MEAN, augment.LITE_STD)}


def image_inputs(batch, rng, train, *, mean, std, crop_padding, flip,
                 image_size, copy_augment=None):
  """uint8 images -> standardised floats, augmented when training, resized
  bilinearly to image_size x image_size if image_size > 0.

  Examples flagged batch['copy'] (rebalancing copies) are first warped by
  `augment.random_affine(**copy_augment)`, so no copy repeats its original.
  """
  images = batch["image"]
  if train and "copy" in batch:
    rng, warp_rng = jax.random.split(rng)
    warped = augment.random_affine(warp_rng, images, **copy_augment)
    images = jnp.where(batch["copy"][:, None, None, None] > 0, warped, images)
  if train and (crop_padding or flip):
    images = augment.augment(rng, images, crop_padding, flip)
  x = augment.to_float(images, mean, std)
  if image_size:
    # Last, on floats: bilinear weights sum to one, so resizing commutes
    # with the per-channel standardisation, which then runs on the small
    # images (1/49 of the pixels at 32 -> 224); augmentation stays in the
    # data's own pixels, where it was tuned (crop padding 4 of 32).
    x = jax.image.resize(x, (x.shape[0], image_size, image_size, x.shape[-1]),
                         "bilinear")
  return x


def loss(outputs, batch, axis_name=None):
  """Masked cross-entropy of `(logits, _)` against batch['label'].

  A model with several heads (a dict of logits) is scored on its 'class' head.
  """
  logits, _ = outputs
  if isinstance(logits, dict):
    logits = logits["class"]
  mask = batch.get("mask", jnp.ones(batch["label"].shape, jnp.float32))
  return losses.masked_cross_entropy(logits, batch["label"], mask, axis_name)


def make_inputs(config, mean: np.ndarray, std: np.ndarray, augment_images=True):
  """`image_inputs` for `config.input`; crops and flips only if
  `augment_images` (a task may augment elsewhere, before its own transforms).

  `mean`/`std` (the training images') standardise pixels if asked, unless
  `input.standardize_stats` names PRETRAINED_STATS: 'imagenet', what the
  converted Keras weights expect (`convert_keras.keras_preprocess`), or
  'lite', what the EfficientNet-Lite weights do (`convert_torch`).
  """
  stats = config.input.standardize_stats
  if stats in PRETRAINED_STATS:
    if len(mean) != 3:
      raise ValueError(f"input.standardize_stats={stats!r} needs RGB images; "
                       f"these have {len(mean)} channel(s).")
    mean, std = PRETRAINED_STATS[stats]
  elif stats != "data":
    raise ValueError("input.standardize_stats must be 'data' or one of "
                     f"{sorted(PRETRAINED_STATS)}, got {stats!r}.")
  if not config.input.standardize:
    mean = std = None
  aug = config.input.augment
  return functools.partial(
      image_inputs, mean=mean, std=std,
      crop_padding=aug.crop_padding if augment_images else 0,
      flip=aug.flip and augment_images, image_size=config.input.image_size,
      copy_augment=_copy_augment(config.input.rebalance_augment))


def make(config, mean: np.ndarray, std: np.ndarray) -> Task:
  return Task(inputs=make_inputs(config, mean, std), loss=loss)


def _copy_augment(cfg) -> dict:
  """config.input.rebalance_augment -> augment.random_affine's arguments."""
  return {"max_degrees": cfg.max_degrees, "max_shift": cfg.max_shift,
          "brightness_range": tuple(cfg.brightness),
          "zoom_range": tuple(cfg.zoom)}


def class_reports(task: Task, data: dict, class_names, batch_size: int):
  """A `Setup.report` writing per-class reports of the eval splits.

  It reads the host arrays in `data`, not the device copies training used:
  process 0 alone must not compute on arrays spread over every host.
  """
  def report(predict, _, workdir):
    for split in ("val", "test"):
      if split in data:
        labels, predictions = class_report.predict_classes(
            predict, task, data[split], batch_size)
        class_report.write(workdir, labels, predictions, class_names, split)
  return report


def model_kwargs(config, num_classes: int) -> dict:
  """Models with their own head take num_classes; `multihead` takes heads."""
  return {"num_classes": num_classes,
          "heads": {"class": HeadSpec(num_classes,
                                      hidden=tuple(config.classifier.hidden))}}


def setup(config, workdir, write: bool) -> Setup:
  data, info = input_pipeline.load(config, workdir, write_split=write)
  task = make(config, info.mean, info.std)
  return Setup(task, data, model_kwargs(config, info.num_classes),
               report=class_reports(task, data, info.class_names,
                                    config.input.eval_batch_size))
