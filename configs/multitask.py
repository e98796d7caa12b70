"""The main job, experiment (C): one backbone, a class head and a rotation
head, trained jointly on 200 labeled + 49,800 unlabeled CIFAR-10 images.

  python -m ssl_jax.main --config=configs/multitask.py --workdir=/tmp/mt
  python -m ssl_jax.main --config=configs/multitask.py:quick --workdir=/tmp/q
  python -m ssl_jax.main --config=configs/multitask.py:backbone=resnet --workdir=/tmp/r
  python -m ssl_jax.main --config=configs/multitask.py --workdir=/tmp/mt \
      --config.loss.class_weight=10 --config.loss.rotation_weight=1

Fields not listed here (data, optimizer, loop) come from supervised.py.
"""
import ml_collections

from ssl_jax import config_files


# Backbone fields, by `backbone=` argument (the core CNN's: supervised.py's).
RESNET = {"stem_features": 32, "features": (32, 64, 128),
          "stage_sizes": (1, 1, 1), "norm": "batch"}


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """`arg`: comma-separated backbone=core_cnn|resnet, quick (a smoke run)."""
  args = config_files.parse_arg(arg, {"backbone", "quick"})
  c = config_files.sibling(__file__, "supervised",
                           "quick" if "quick" in args else "")
  c.task = "multitask"  # Labeled + unlabeled batches, two heads.

  c.input.batch_size = 32  # Labeled images per step.
  c.input.unlabeled_batch_size = 96  # Unlabeled images per step (S4L ratio).
  c.input.rotation_mode = "all"  # 'all': each image x4 rotations; 'random': one.

  backbone = c.model  # The core CNN's fields from supervised.py.
  c.model = ml_collections.ConfigDict()
  c.model.name = "multihead"  # Backbone + heads (ssl_jax/models/multihead.py).
  c.model.backbone = args.get("backbone", "core_cnn")  # From ssl_jax.models.
  c.model.backbone_config = RESNET if c.model.backbone == "resnet" else {
      k: v for k, v in backbone.items() if k not in ("name", "head_hidden")
  }  # The backbone's fields.
  c.model.features = "pre_logits"  # Backbone feature the heads read.
  c.model.rotation_head = True  # Add the 4-way rotation head.
  c.model.class_head_hidden = ()  # Hidden layers of the class head.
  c.model.rotation_head_hidden = ()  # Hidden layers of the rotation head.
  c.model.head_dropout_rate = 0.3  # Dropout on the features before the heads.
  c.model.probe = False  # Class head on stop_gradient features (pretraining).

  c.loss = ml_collections.ConfigDict()
  c.loss.class_weight = 1.0  # w_cls: classification loss weight.
  c.loss.rotation_weight = 1.0  # w_rot: rotation loss weight.

  c.init_from = ""  # Workdir or checkpoint whose backbone to start from.
  c.optimizer.frozen_params = ""  # Regex of parameter paths not trained.

  if "quick" in args:  # On top of supervised.py's quick settings.
    c.input.batch_size = 16
    c.input.unlabeled_batch_size = 16
  else:
    c.num_epochs = 30  # Epochs of `steps_per_epoch` steps.
    c.steps_per_epoch = 0  # 0 = one pass over the unlabeled pool.
    c.log_every_steps = 100  # Progress line (steps/s, ETA) interval.
  return c
