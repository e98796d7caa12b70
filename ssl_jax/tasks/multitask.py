"""Two heads, one backbone: classification + rotation prediction (S4L).

Experiment (C) of SEEDS.md section 3, done right (Zhai et al. 2019): every
step takes `input.batch_size` labeled and `input.unlabeled_batch_size`
unlabeled images. The classification loss sees only labeled, unrotated
images (a per-example mask normalised by the labeled count, never zero
targets); the rotation loss sees every image. Total loss:
  loss = w_cls * L_cls + w_rot * L_rot.
With `model.probe` the class head reads stop_gradient(features): the same task
is then pure rotation pretraining with an online linear probe (experiment B).
Evaluation turns each test image four ways: class accuracy on the unrotated
copies, rotation accuracy on all of them.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax import augment
from ssl_jax import input_pipeline
from ssl_jax import rotation
from ssl_jax.tasks import Setup
from ssl_jax.tasks import Task
from ssl_jax.tasks import classification


def expand(batch, rng, train, *, mode, crop_padding=0, flip=False):
  """A batch of images -> the rotated examples the model sees, with targets.

  Training images are augmented (crop, flip) first: flipping a rotated image
  would turn its 90 degrees into 270. mode 'all': every image at
  0/90/180/270 degrees; the class loss takes the labeled images at 0. mode
  'random': one random rotation per image, plus an unrotated copy for the
  class loss. Evaluation always uses 'all'.
  """
  images, labels = batch["image"], batch["label"]
  if train:
    augment_rng, rng = jax.random.split(rng)
    if crop_padding or flip:
      images = augment.augment(augment_rng, images, crop_padding, flip)
  ones = jnp.ones(labels.shape, jnp.float32)
  valid = batch.get("mask", ones)  # 0 on the padding of eval splits.
  labeled = batch.get("labeled", ones) * valid
  if mode == "all" or not train:
    rotated, k = rotation.all_rotations(images)
    rep = lambda a: jnp.repeat(a, rotation.NUM_ROTATIONS, axis=0)
    return {"image": rotated, "label": rep(labels),
            "class_mask": rep(labeled) * (k == 0),
            "rotation_label": k, "rotation_mask": rep(valid)}
  if mode != "random":
    raise ValueError(f"rotation mode must be 'all' or 'random', got {mode!r}.")
  rotated, k = rotation.random_rotations(rng, images)
  zeros = jnp.zeros_like(ones)
  return {"image": jnp.concatenate([images, rotated]),
          "label": jnp.concatenate([labels, labels]),
          "class_mask": jnp.concatenate([labeled, zeros]),
          "rotation_label": jnp.concatenate([jnp.zeros_like(k), k]),
          "rotation_mask": jnp.concatenate([zeros, valid])}


def loss(outputs, batch, axis_name=None, *, class_weight, rotation_weight):
  """w_cls * masked class CE + w_rot * masked rotation CE, and metrics.

  Metrics: 'loss' (the total, averaged over steps or eval batches),
  'class_loss', 'accuracy' (classification), 'rotation_loss',
  'rotation_accuracy'.
  """
  logits, _ = outputs
  # Unlabeled rows carry no usable label; the mask removes them, and a
  # valid index keeps the masked-out terms finite.
  labels = jnp.where(batch["class_mask"] > 0, batch["label"], 0)
  cls_loss, cls = classification.masked_cross_entropy(
      logits["class"], labels, batch["class_mask"], axis_name)
  rot_loss, rot = classification.masked_cross_entropy(
      logits["rotation"], batch["rotation_label"], batch["rotation_mask"],
      axis_name)
  total = class_weight * cls_loss + rotation_weight * rot_loss
  # Each device's share of one step's total: the shares sum to 1 under pmap.
  share = 1.0 / classification.global_sum(1.0, axis_name)
  return total, {"loss": jnp.stack([total, share]),
                 "class_loss": cls["loss"], "accuracy": cls["accuracy"],
                 "rotation_loss": rot["loss"],
                 "rotation_accuracy": rot["accuracy"]}


def make(config, mean, std) -> Task:
  # Augmentation moves into `expand`, before the rotations; `inputs` only
  # scales (and resizes).
  return Task(
      inputs=classification.make_inputs(config, mean, std,
                                        augment_images=False),
      loss=functools.partial(loss, class_weight=config.loss.class_weight,
                             rotation_weight=config.loss.rotation_weight),
      expand=functools.partial(
          expand, mode=config.input.rotation_mode,
          crop_padding=config.input.augment.crop_padding,
          flip=config.input.augment.flip))


def setup(config, workdir, write: bool) -> Setup:
  """The labeled and unlabeled training images in one array, as two streams.

  Rows [0, n_labeled) are the labeled examples, the rest the unlabeled pool
  (labels kept only so the arrays line up; 'labeled' = 0 masks them out).
  """
  data, info = input_pipeline.load(config, workdir, write_split=write,
                                   unlabeled=True)
  labeled, pool = data["train"], data.pop("unlabeled")
  data["train"] = {
      k: np.concatenate([labeled[k], pool[k]]) for k in ("image", "label")}
  data["train"]["labeled"] = np.concatenate(
      [np.ones(len(labeled["label"]), np.float32),
       np.zeros(len(pool["label"]), np.float32)])
  streams = ((len(labeled["label"]), config.input.batch_size),
             (len(pool["label"]), config.input.unlabeled_batch_size))
  task = make(config, info.mean, info.std)
  # Per-class reports score the class head on unrotated images: no `expand`.
  report = classification.class_reports(task, data, info.class_names,
                                        config.input.eval_batch_size)
  return Setup(task, data, {"num_classes": info.num_classes}, report=report,
               streams=streams)
