"""A class head and any mix of pretext tasks on one backbone (S4L, RotNet).

Every step takes `input.batch_size` labeled and `input.unlabeled_batch_size`
unlabeled images (S4L). The images are cropped and flipped once; each
pretext task in `config.pretext` (ssl_jax.pretext) turns them (or, if it
asks, the images before augmentation) into the examples it needs, and the
model runs its head on them. Total loss:
  loss = classifier.weight * L_cls + sum_k pretext.<k>.weight * L_k,
the class loss over labeled images only (a mask normalised by their count,
never zero targets). With `classifier.probe` the class head reads
stop_gradient(features): pretraining with an online linear probe (B).
Metrics: 'loss' (the total), 'class_loss', 'accuracy' (the class head) and
'<pretext>_<metric>' of each pretext task.
"""
import functools
import zlib

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax import losses
from ssl_jax import tasks
from ssl_jax.data import augment
from ssl_jax.data import input_pipeline
from ssl_jax.data import rows
from ssl_jax.evals import knn
from ssl_jax.models import multihead
from ssl_jax.pretext import mix
from ssl_jax.pretext import self_training
from ssl_jax.tasks import classification
from ssl_jax.tasks import Setup
from ssl_jax.tasks import Task

def expand(batch, rng, train, *, pretexts, class_from, crop_padding=0,
           flip=False):
  """A batch of images -> {'groups': {group: images}, 'views': {pretext:
  Views without images}, 'view_masks': {pretext: (N,) 0/1}, 'label',
  'class_mask'}: what the model sees and the targets."""
  images = raw = batch["image"]
  labels = batch["label"]
  if train:
    augment_rng, rng = jax.random.split(rng)
    if crop_padding or flip:
      images = augment.augment(augment_rng, images, crop_padding, flip)
  ones = jnp.ones(labels.shape, jnp.float32)
  valid = batch.get("mask", ones)  # 0 on the padding of eval splits.
  labeled = batch.get("labeled", ones) * valid
  groups = {mix.BATCH: images} if class_from == mix.BATCH else {}
  views, masks = {}, {}
  for name, p in pretexts.items():
    # Keyed by name: a pretext draws the same whatever else is in the mix.
    seed = zlib.crc32(name.encode()) & 0x7FFFFFFF
    key = jax.random.fold_in(rng, seed) if train else None
    v = p.module.transform(p.cfg, raw if p.spec.raw_images else images, key,
                           train)
    parts = v.images if isinstance(v.images, tuple) else (v.images,)
    groups.update({name if i == 0 else f"{name}/{i}": x
                   for i, x in enumerate(parts)})
    views[name] = v._replace(images=None)
    masks[name] = valid[v.source]
  out = {"groups": groups, "views": views, "view_masks": masks,
         "labeled": labeled, "image_label": labels}
  b = labels.shape[0]
  if class_from == mix.BATCH:
    return {**out, "label": labels, "class_mask": labeled,
            "image_rows": jnp.arange(b)}
  source, identity = views[class_from].source, views[class_from].identity
  # The class-group row holding each batch image as augmented (unrotated).
  image_rows = jnp.zeros(b, jnp.int32).at[jnp.where(identity, source, b)].set(
      jnp.arange(source.shape[0], dtype=jnp.int32), mode="drop")
  return {**out, "label": labels[source], "class_mask": labeled[source] *
          identity, "image_rows": image_rows}


def make_inputs(image_inputs):
  """Each group's images -> scaled (and resized) floats for the model."""
  return lambda batch, rng, train: {
      g: image_inputs({"image": x}, rng, train)
      for g, x in batch["groups"].items()}


def loss(outputs, batch, axis_name=None, method_state=None, *, class_weight,
         pretexts):
  """class_weight * masked class CE + sum_k w_k * L_k, and metrics; a
  pretext with state gets its part of `method_state`."""
  logits, _ = outputs
  cls_loss, cls = losses.masked_cross_entropy(
      logits["class"], batch["label"], batch["class_mask"], axis_name)
  total = class_weight * cls_loss
  metrics = {"class_loss": cls["loss"], "accuracy": cls["accuracy"]}
  for name, p in pretexts.items():
    kwargs = ({"state": method_state[name]}
              if hasattr(p.module, "init_state") else {})
    if hasattr(p.module, "teacher"):
      kwargs["teacher_outputs"] = batch["teacher"][name]
    if p.spec.reads_class_head:
      kwargs.update(
          class_logits=jax.lax.stop_gradient(
              logits["class"][batch["image_rows"]].astype(jnp.float32)),
          labeled=batch["labeled"], labels=batch["image_label"])
    pretext_loss, m = p.module.loss(
        p.cfg, logits[name], batch["views"][name],
        batch["view_masks"][name], axis_name, **kwargs)
    total = total + p.cfg.weight * pretext_loss
    metrics.update({f"{name}_{k}": v for k, v in m.items()})
  # Each device's share of one step's total: the shares sum to 1 under pmap.
  share = 1.0 / losses.global_sum(1.0, axis_name)
  metrics["loss"] = jnp.stack([total, share])
  return total, metrics


def make(config, mean, std, num_classes, total_steps) -> tuple[Task, dict]:
  """The task, and the heads it declares; `total_steps` paces the methods'
  state (Update.progress)."""
  pretexts = mix.pretexts_of(config)
  class_from = mix.class_group(pretexts)
  # Crops and flips happen once in `expand`, before the pretext transforms
  # (a flip after a quarter turn would swap 90 and 270 degrees).
  image_inputs = classification.make_inputs(config, mean, std,
                                            augment_images=False)
  aug = config.input.augment
  task = Task(
      inputs=make_inputs(image_inputs),
      loss=functools.partial(loss, class_weight=config.classifier.weight,
                             pretexts=pretexts),
      expand=functools.partial(expand, pretexts=pretexts,
                               class_from=class_from,
                               crop_padding=aug.crop_padding, flip=aug.flip),
      **({"init_state": functools.partial(mix.init_state, pretexts=pretexts),
          "update_state": functools.partial(
              mix.update_state, total_steps=total_steps, pretexts=pretexts)}
         if mix.stateful(pretexts) else {}),
      **({"teacher": functools.partial(mix.teacher_outputs,
                                       pretexts=pretexts)}
         if mix.teachers(pretexts) else {}))
  return task, mix.heads(config, pretexts, num_classes)


def setup(config, workdir, write: bool) -> Setup:
  """The labeled and unlabeled training images in one array, as two streams.

  Rows [0, n_labeled) are the labeled examples, the rest the unlabeled pool
  ('labeled' = 0 masks their labels out of the class loss). With
  `self_training.teacher`, the pool's labels are the teacher's guesses and
  'labeled' is 1 where it is confident.
  """
  data, info = input_pipeline.load(config, workdir, write_split=write,
                                   unlabeled=True)
  labeled, pool = data["train"], data.pop("unlabeled")
  true_labels = np.concatenate([labeled["label"], pool["label"]])
  pool_labeled = np.zeros(len(pool["label"]), np.float32)
  if "self_training" in config:
    if not config.input.unlabeled_batch_size:
      raise ValueError("self_training.teacher needs pool images in each "
                       "step: set input.unlabeled_batch_size > 0.")
    pool["label"], pool_labeled = self_training.pseudo_label(
        config.self_training, pool["image"], pool["label"], info.image_shape,
        info.num_classes, config.input.eval_batch_size,
        workdir if write else None)
  data["train"] = {
      k: rows.concat([labeled[k], pool[k]]) for k in ("image", "label")}
  data["train"]["labeled"] = np.concatenate(
      [np.ones(len(labeled["label"]), np.float32), pool_labeled])
  streams = ((len(labeled["label"]), config.input.batch_size),
             (len(pool["label"]), config.input.unlabeled_batch_size))
  task, declared = make(config, info.mean, info.std, info.num_classes,
                        tasks.schedule_length(config, streams)[1])
  # Per-class reports score the class head on the plain test images.
  plain = classification.make(config, info.mean, info.std)
  report = classification.class_reports(plain, data, info.class_names,
                                        config.input.eval_batch_size)
  monitor = None
  if config.knn.k:  # The bank: the labeled rows, first in data['train'].
    truth = {**data, "train": {**data["train"], "label": true_labels}}
    monitor = knn.monitor(
        config, multihead.backbone_features(config.model, plain.inputs), truth,
        streams[0][0], info.num_classes)
  return Setup(task, data, {"num_classes": info.num_classes,
                            "heads": declared}, report=report,
               streams=streams, monitor=monitor)
