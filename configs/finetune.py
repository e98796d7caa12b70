"""Experiment (B), step 2: a 10-way classifier on the 200 labels, starting
from a pretrained backbone (`--config.init_from=WORKDIR`).

  python -m ssl_jax.main --config=configs/finetune.py --workdir=runs/ft \
      --config.init_from=runs/rot                  # full fine-tuning, lr 1e-4
  python -m ssl_jax.main --config=configs/finetune.py:mode=linear ...  # probe
  python -m ssl_jax.main --config=configs/finetune.py:mode=frozen_blocks,blocks=2 ...

Modes: 'full' trains everything with a 10x smaller learning rate (the
seeds: 1e-3 -> 1e-4); 'linear' freezes the backbone (a linear classifier on
its features); 'frozen_blocks' freezes the first `blocks` conv blocks and
trains the later ones and the head (RotNet's best protocol). BatchNorm
statistics of frozen layers still follow the new data. Without init_from it
trains from scratch: the supervised baseline (A) with the same model.
"""
import ml_collections

from ssl_jax import config_files
from ssl_jax import models


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """`arg`: comma-separated mode=full|linear|frozen_blocks, blocks=K,
  backbone=NAME (as pretrained), quick."""
  args = config_files.parse_arg(arg, {"mode", "blocks", "backbone", "quick"})
  c = config_files.sibling(__file__, "multitask", ",".join(
      f"{k}={args[k]}" for k in ("backbone", "quick") if k in args))
  c.task = "classification"  # Labeled images only, class head only.
  # No pretext task, no k-NN monitor, no unlabeled images: a fresh class head.
  for field in ("pretext", "knn"):
    del c[field]
  del c.classifier["weight"], c.classifier["probe"]
  del c.input["unlabeled_batch_size"]
  mode = args.get("mode", "full")
  if mode == "full":
    c.optimizer.learning_rate = 1e-4
  elif mode == "linear":
    c.optimizer.frozen_params = "^backbone/"
  elif mode == "frozen_blocks":
    c.optimizer.frozen_params = "^backbone/" + models.block_pattern(
        c.model.backbone, int(args.get("blocks", 2)))
  else:
    raise ValueError(f"Unknown mode {mode!r}; expected full, linear or "
                     "frozen_blocks.")
  if "quick" not in args:
    c.num_epochs = 60  # As (A): 60 epochs of 50 steps of 64 labeled images.
    c.steps_per_epoch = 50
    c.input.batch_size = 64
    c.log_every_steps = 50
  return c
