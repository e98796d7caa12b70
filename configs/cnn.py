"""The seeds' full-data CNN (SEEDS.md section 4) and its class-imbalance runs.

Three blocks of two 'same' 3x3 convs (32, 64, 128) with BatchNorm and max
pooling, Dense 128, Dense 10, trained on 45,000 CIFAR-10 labels with 5,000
held out for early stopping (patience 5, as the seeds). The CNN family's
other fields (ssl_jax/models/core_cnn.py) are what experiments/search.py and
experiments/ablations.py vary.

  python -m ssl_jax.main --config=configs/cnn.py --workdir=/tmp/cnn
  python -m ssl_jax.main --config=configs/cnn.py:imbalance --workdir=/tmp/im
  python -m ssl_jax.main --config=configs/cnn.py:rebalance --workdir=/tmp/re
  python -m ssl_jax.main --config=configs/cnn.py:quick --workdir=/tmp/q

Fields not listed here come from supervised.py.
"""
import ml_collections

from ssl_jax import config_files

CAT, DOG = 3, 5  # CIFAR-10 class indices.


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """`arg`: comma-separated imbalance (drop 90% of the cat and dog training
  images), rebalance (imbalance, then augmented copies of cats and dogs until
  every class has as many images), quick (a smoke run)."""
  args = config_files.parse_arg(arg, {"imbalance", "rebalance", "quick"})
  c = config_files.sibling(__file__, "supervised",
                           "quick" if "quick" in args else "")
  c.input.labels_per_class = -1  # Every training label (minus validation).
  c.input.val_size = 5000  # Held out for early stopping and model search.
  c.input.batch_size = 128  # The seeds: 64; 128 runs ~1.5x faster on CPU.
  if "imbalance" in args or "rebalance" in args:
    # Of each of these labeled classes, this fraction goes (seeded): 4,500 of
    # 5,000 cats and dogs.
    c.input.drop_classes = (CAT, DOG)
    c.input.drop_fraction = 0.9
  c.input.rebalance = "rebalance" in args

  c.model.features = (32, 64, 128)  # Filters per block.
  c.model.convs_per_block = 2  # Two 3x3 convs per block.
  c.model.padding = "SAME"  # Keeps 32 -> 16 -> 8 -> 4 through the pools.
  c.model.pool_sizes = (2, 2, 2)  # Pool window (= stride) per block.
  c.model.pool_types = ("max", "max", "max")  # 'max' or 'avg' per block.
  c.model.kernel_size = 3  # Conv kernel side.
  c.model.dense = 128  # The seeds' Dense 128.
  c.model.dropout_rate = 0.25  # After every block and the dense layer.

  c.num_epochs = 30  # At most; early stopping usually ends sooner.
  c.steps_per_epoch = 0  # One pass over the training images.
  c.log_every_steps = 200  # Progress line (steps/s, ETA) interval.
  c.early_stopping.patience = 5  # Epochs without a better val accuracy.
  c.early_stopping.metric = "val_accuracy"  # A val_* metric (needs val_size).

  if "quick" in args:  # On top of supervised.py's quick settings.
    c.input.val_size = 200
    c.input.max_test_examples = 200
    c.input.eval_batch_size = 100
    c.input.batch_size = 32
    c.num_epochs = 2
    c.steps_per_epoch = 10
    c.log_every_steps = 5
  return c
