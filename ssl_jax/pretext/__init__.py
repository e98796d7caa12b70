"""Pretext tasks: self-supervised objectives as plug-ins.

`config.pretext.<key>.name` names each one: 'rotation', 'jigsaw' and
'exemplar' are built in; any other name is the import path of a module of
your own (ssl_jax/plugins.py), e.g. `--config=configs/multitask.py:
pretext=rotation+my_lab.context` (key 'context'). A pretext task is one
module with:

  get_config() -> ml_collections.ConfigDict
      Its fields and their defaults; `weight` (its loss weight w_k) is one.
  spec(cfg) -> Spec
      What it needs from the model and the batch (below).
  transform(cfg, images, rng, train) -> Views
      On the device, inside the jitted step. `images` is the (B, H, W, C)
      batch (uint8 or float on the 0-255 scale; cropped and flipped when
      training, unless Spec.raw_images). `rng` is None at evaluation, where
      the transform must be deterministic.
  loss(cfg, outputs, views, mask, axis_name) -> (loss, metrics)
      `outputs` (N, head outputs) float32 (or the dict of Head.module's
      outputs), rows in the order of the views; `mask` (N,) 0/1 (0 on padding);
      the loss normalised by the global count (ssl_jax.losses); metrics a
      dict of [sum, count] pairs, reported as '<key>_<metric>'.
      `cross_entropy_loss` below is the loss of a target class per row.
      With Spec.reads_class_head it also gets the class head's view of the
      batch, for pseudo-labels: `class_logits` (B, classes), the class head
      on each batch image as cropped and flipped, without gradient;
      `labeled` (B,) 1 where the class loss reads the image's label; and
      `labels` (B,), the true labels, for metrics only (an unlabeled
      image's label must never reach the loss).
  describe(cfg, probabilities) -> str   (optional)
      What its head says of one plain image, for `ssl_jax.tools.predict`
      (rotation: the angle it sees); `probabilities` (outputs,) float32.
  init_state(cfg, variables) -> state   (optional, with update_state)
  update_state(cfg, state, update: Update) -> state
      State of its own across steps (an EMA teacher, a centre): its start
      from the model's variables of the backbone and its own head
      ({'params': {'backbone', '<key>_head'}, 'batch_stats': ...}), and its
      value after each optimizer step (`Update` below), inside the jitted
      step and outside the gradient. Its `loss` then takes `state=` as
      well. The state is in the checkpoint: a resumed run continues it
      exactly.
  teacher(cfg, state) -> variables   (optional, with init_state)
      A teacher network kept in the state (BYOL, DINO), shaped as the
      variables init_state gets. The step runs the model with them on the
      method's first group of views (`Views.images`, or its first entry)
      without gradient (training: batch statistics, as the student); `loss`
      gets the head's outputs as `teacher_outputs=`, and so does
      `Update.teacher`.

Its randomness is keyed by its key, so it draws the same in any mix. Helpers
methods share: `losses.masked_cross_entropy`, `data.augment.cut_patches`,
`data.view_augment` (SimCLR's views), `pretext.momentum` (EMA teachers),
`models.projection` (projection heads).
"""
from typing import Any, NamedTuple

import jax

from ssl_jax import losses


class Head(NamedTuple):
  """The head a pretext task puts on the backbone's features."""
  outputs: int  # Output units.
  hidden: tuple[int, ...] = ()  # Hidden Dense-ReLU-Dropout layers.
  # Features of that many consecutive examples are joined into one head row
  # (jigsaw: the tiles of one puzzle).
  concat: int = 1
  # A head of its own instead of the MLP: `module(dtype=, axis_name=,
  # name=)` makes a flax module whose `__call__(features, train)` returns an
  # array or a dict of arrays (BYOL: projection and prediction); `dtype` is
  # the compute dtype, `axis_name` the pmap axis for BatchNorm.
  module: Any = None


class Spec(NamedTuple):
  """What a pretext task declares, given its config."""
  head: Head
  # `transform` gets the batch before the crop and flip (jigsaw: a crop's
  # zero border would tell where a tile sits).
  raw_images: bool = False
  # Its training views mark `identity` rows (rotation by 0 of every image):
  # the class head then reads those rows, saving a backbone pass.
  class_rows: bool = False
  # Its head is the class head (the same layers, on its views): consistency
  # methods pseudo-label with it. `head` is then unused.
  reads_class_head: bool = False


class Views(NamedTuple):
  """The examples a pretext task makes of a batch, and their targets."""
  # (N * concat, h, w, C): what the backbone sees; or a tuple of such arrays
  # of different image sizes (multi-crop), whose rows follow one another.
  images: Any
  target: Any  # (N, ...): what the head should predict (any pytree).
  source: jax.Array  # (N,) int32: the batch image each head row comes from.
  # (N,) bool: rows whose example is the batch image itself (Spec.class_rows).
  identity: jax.Array | None = None
  extra: Any = None  # Anything else its loss or tests read.


class Update(NamedTuple):
  """What `update_state` gets after each optimizer step."""
  variables: dict  # The model's new {'params', 'batch_stats'}.
  progress: jax.Array  # Steps done / the run's steps: 0 -> 1 (schedules).
  teacher: Any = None  # The step's `teacher_outputs`, with `teacher`.
  axis_name: str | None = None  # For global sums under pmap.


def cross_entropy_loss(cfg, outputs, views: Views, mask, axis_name=None):
  """Masked softmax cross-entropy of `views.target` (a class per row)."""
  del cfg
  return losses.masked_cross_entropy(outputs, views.target, mask, axis_name)
