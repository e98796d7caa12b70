"""Experiment (A): supervised training on the 200 labeled CIFAR-10 images.

  python -m ssl_jax.main --config=configs/supervised.py --workdir=/tmp/sup
  python -m ssl_jax.main --config=configs/supervised.py:quick --workdir=/tmp/q

The image-classification fields (data, model, class head); the loop and
optimizer come from base.py.
"""
import ml_collections

from ssl_jax import config_files


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """`arg`: '' for the full run, 'quick' for a smoke run of a minute or so."""
  if arg not in ("", "quick"):
    raise ValueError(f"Unknown config argument {arg!r}; expected '' or 'quick'.")
  quick = arg == "quick"
  c = config_files.sibling(__file__, "base", quick=quick)
  c.task = "classification"  # A name from ssl_jax.tasks.

  c.input.name = "cifar10"  # A dataset of ssl_jax/data/registry.py.
  c.input.data_dir = ""  # Directory of the original files; '' = defaults.
  c.input.source = "auto"  # 'files', 'tfds', or 'auto' (files, then TFDS).
  c.input.check_files = True  # Official files only (counts, md5); False = yours.
  c.input.labels_per_class = 5 if quick else 20  # Labeled per class; -1 = all.
  c.input.val_size = 0  # Training examples held out for validation.
  c.input.max_test_examples = 1000 if quick else 0  # First N test images; 0 = all.
  c.input.batch_size = 32 if quick else 64  # Global, divisible by the devices.
  c.input.eval_batch_size = 500 if quick else 1000  # Global eval batch size.
  c.input.standardize = True  # Per-channel standardisation (else [0, 1]).
  c.input.standardize_stats = "data"  # 'data' (train set's), 'imagenet', 'lite'.
  c.input.image_size = 0  # Bilinear resize to N x N on the device; 0 = keep.
  c.input.augment = ml_collections.ConfigDict()
  c.input.augment.crop_padding = 4  # Random crop after zero padding; 0 = off.
  c.input.augment.flip = True  # Random horizontal flips.
  c.input.rebalance = False  # Add augmented copies until classes are equal.
  c.input.rebalance_augment = ml_collections.ConfigDict()  # For the copies:
  c.input.rebalance_augment.max_degrees = 30.0  # rotation in [-30, 30],
  c.input.rebalance_augment.max_shift = 0.2  # shifts up to 20% of the side,
  c.input.rebalance_augment.brightness = (0.85, 1.15)  # brightness factor,
  c.input.rebalance_augment.zoom = (0.85, 1.15)  # and zoom factor ranges.

  c.model = ml_collections.ConfigDict()
  c.model.name = "core_cnn"  # A name from ssl_jax.models.
  c.model.features = (32, 64, 128)  # Filters of the conv blocks.
  c.model.pool_sizes = (3, 2, 2)  # Max-pool window (= stride) per block.
  c.model.dense = 1024  # Units of the dense layer after the blocks; 0 = none.
  c.model.head_hidden = ()  # Hidden layers of the classification head.
  c.model.activation = "relu"  # Any flax.linen activation name.
  c.model.dropout_rate = 0.3  # After every block and the dense layer.
  c.model.norm = "batch"  # batch | layer | group | instance | rms | none.
  c.model.norm_momentum = 0.9  # BatchNorm running-statistics momentum.
  c.model.dtype = "float32"  # Or bfloat16 compute; params, stats, logits f32.

  # The class head of a `multihead` model (a core_cnn has its own head).
  c.classifier = ml_collections.ConfigDict()
  c.classifier.hidden = ()  # Hidden layers of the class head.

  c.optimizer.weight_decay = 5e-4  # L2 on every trained parameter.
  if not quick:
    c.steps_per_epoch = 50  # 50 steps of 64 of the 200 labeled images.
  return c
