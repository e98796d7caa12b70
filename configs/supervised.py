"""Experiment (A): supervised training on the 200 labeled CIFAR-10 images.

  python -m ssl_jax.main --config=configs/supervised.py --workdir=/tmp/sup
  python -m ssl_jax.main --config=configs/supervised.py:quick --workdir=/tmp/q
"""
import ml_collections


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """`arg`: '' for the full run, 'quick' for a smoke run of a minute or so."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # Fixes the split, init, data order, augmentation and dropout.
  c.task = "classification"  # A name from ssl_jax.tasks.
  c.parallel = "jit"  # 'jit' over a device mesh, or 'pmap'.

  c.input = ml_collections.ConfigDict()
  c.input.name = "cifar10"  # 'cifar10' or 'fashion_mnist'.
  c.input.data_dir = ""  # Directory of the original files; '' = defaults.
  c.input.source = "auto"  # 'files', 'tfds', or 'auto' (files, then TFDS).
  c.input.labels_per_class = 20  # Labeled examples per class; -1 = all.
  c.input.val_size = 0  # Training examples held out for validation.
  c.input.max_test_examples = 0  # Evaluate on the first N test images; 0 = all.
  c.input.batch_size = 64  # Global batch size, divisible by the device count.
  c.input.eval_batch_size = 1000  # Global eval batch size.
  c.input.standardize = True  # Per-channel standardisation (else [0, 1]).
  c.input.standardize_stats = "data"  # 'data' (train set's) or 'imagenet'.
  c.input.image_size = 0  # Bilinear resize to N x N on the device; 0 = keep.
  c.input.augment = ml_collections.ConfigDict()
  c.input.augment.crop_padding = 4  # Random crop after zero padding; 0 = off.
  c.input.augment.flip = True  # Random horizontal flips.
  c.input.drop_classes = ()  # Classes thinned out of the labeled set,
  c.input.drop_fraction = 0.0  # each losing this fraction (seeded).
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

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "adam"  # adam | adamw | sgd | momentum | rmsprop | adadelta.
  c.optimizer.learning_rate = 1e-3  # Peak learning rate.
  c.optimizer.schedule = "cosine"  # 'constant' or 'cosine' decay to 0.
  c.optimizer.warmup_steps = 0  # Linear warmup steps.
  c.optimizer.weight_decay = 5e-4  # L2 (decoupled for adamw).
  c.optimizer.momentum = 0.9  # For 'momentum' (Nesterov).
  c.optimizer.grad_clip_norm = 0.0  # Global-norm clipping; 0 = off.

  c.num_epochs = 60  # Epochs of `steps_per_epoch` steps.
  c.steps_per_epoch = 50  # 0 = one pass over the labeled set.
  c.log_every_steps = 50  # Progress line (steps/s, ETA) interval.
  c.checkpoint_every_steps = 0  # Extra mid-epoch saves; epoch ends always save.
  c.keep_checkpoints = 2  # Checkpoints kept in workdir/checkpoints.
  c.early_stopping = ml_collections.ConfigDict()
  c.early_stopping.patience = 0  # Epochs without improvement; 0 = off.
  c.early_stopping.metric = "val_accuracy"  # A val_* metric (needs val_size).

  if arg == "quick":
    c.input.labels_per_class = 5
    c.input.max_test_examples = 1000
    c.input.eval_batch_size = 500
    c.input.batch_size = 32
    c.num_epochs = 2
    c.steps_per_epoch = 10
    c.log_every_steps = 5
  elif arg:
    raise ValueError(f"Unknown config argument {arg!r}; expected '' or 'quick'.")
  return c
