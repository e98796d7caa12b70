"""FixMatch on 200 labeled + 49,800 unlabeled CIFAR-10 images.

  python -m ssl_jax.main --config=configs/fixmatch.py --workdir=runs/fm
  python -m ssl_jax.main \
      --config=configs/fixmatch.py:pretext=fixmatch+rotation --workdir=runs/fmr
  python -m ssl_jax.main --config=configs/pretrain.py:backbone=resnet \
      --workdir=runs/rot  # Rotation pretraining, then FixMatch from it:
  python -m ssl_jax.main --config=configs/fixmatch.py --workdir=runs/fm_init \
      --config.init_from=runs/rot
  python -m ssl_jax.main --config=configs/fixmatch.py:pretext=none \
      --workdir=runs/sup  # The labels alone: same backbone, steps, crops.
  python -m ssl_jax.main --config=configs/fixmatch.py:paper --workdir=runs/paper
  python -m ssl_jax.main --config=configs/fixmatch.py:quick --workdir=/tmp/q

The default fits a 2-core CPU (a small ResNet, 32 labeled + 3 x 32
unlabeled images a step, 4,000 steps; experiments/README.md); `paper` is
Sohn et al.'s CIFAR-10 recipe (WRN-28-2, 64 labeled + 7 x 64 unlabeled
images a step, 2^20 steps) for GPU/TPU hosts. Fields not listed here come
from multitask.py, supervised.py and base.py; FixMatch's own (tau, the
RandAugment ops, Cutout) from ssl_jax/pretext/fixmatch.py.
"""
import ml_collections

from ssl_jax import config_files


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """`arg`: comma-separated backbone=NAME (default resnet; paper:
  wide_resnet),
  pretext=fixmatch[+NAME...] or none (the labels alone), and paper or
  quick."""
  args = config_files.parse_arg(arg, {"backbone", "pretext", "paper",
                                      "quick"})
  paper, quick = "paper" in args, "quick" in args
  # WRN-28-2 is FixMatch's; on a 2-core CPU it trains 9x slower than the
  # small ResNet (32 vs 290 images/s), too slow for a 2-hour budget.
  backbone = args.get("backbone", "wide_resnet" if paper else "resnet")
  inner = [f"backbone={backbone}",
           f"pretext={args.get('pretext', 'fixmatch')}"] + (
               ["quick"] if quick else [])
  c = config_files.sibling(__file__, "multitask", ",".join(inner))

  c.input.batch_size = 64 if paper else 16 if quick else 32  # Labeled per step.
  mu = 7 if paper else 2 if quick else 3  # Unlabeled images per labeled one.
  if c.pretext:
    c.input.unlabeled_batch_size = mu * c.input.batch_size
  c.model.head_dropout_rate = 0.0  # FixMatch's WRN has no dropout.
  if quick and backbone == "wide_resnet":  # WRN-10-1: a smoke run.
    c.model.backbone_config.update(depth=10, widen_factor=1)
  # No k-NN monitor (knn.k = 0): the class head's accuracy says it all.
  c.knn = ml_collections.ConfigDict({"k": 0})
  if "rotation" in c.pretext:  # ReMixMatch's: one random angle per image.
    c.pretext.rotation.mode = "random"

  c.optimizer.name = "momentum"  # SGD with Nesterov momentum,
  c.optimizer.momentum = 0.9
  c.optimizer.learning_rate = 0.03  # at FixMatch's lr,
  c.optimizer.schedule = "fixmatch_cosine"  # lr cos(7 pi k / 16 K),
  c.optimizer.weight_decay = 5e-4  # and its L2 on the weights.
  # Evaluated and reported with the EMA weights (ema_test_accuracy) as
  # FixMatch reports; raw weights' numbers are logged next to them.
  c.ema_decay = 0.999

  if paper:
    c.num_epochs = 1024  # 1024 x 1024 = 2^20 steps.
    c.steps_per_epoch = 1024
    c.log_every_steps = 200
  elif not quick:
    c.num_epochs = 10  # 10 x 400 steps: ~35 minutes of a 2-core CPU.
    c.steps_per_epoch = 400
    c.log_every_steps = 50
  return c
