"""Frozen-feature evaluation (RotNet's semi-supervised protocol): a linear
classifier on each feature level of a pretrained, frozen backbone, for K
labels per class, next to the same network trained from scratch on the same
K labels.

  python experiments/frozen_features.py --init_from=runs/rot --out=runs/frozen \
      --levels=block1,block2,block3,pre_logits --labels_per_class=20,100,400

Each (level, K, seed) is `configs/finetune.py:mode=linear` with
`cache_features`: the backbone's features of the unaugmented images are
computed once (feature maps average-pooled), the backbone stays
bit-identical, and only the linear head trains, on the K x 10 labeled images
the seed draws. The baseline is `configs/finetune.py` without init_from:
every layer trained from scratch (learning rate 1e-3, crops and flips) on
the same labeled images. Reporting rule: each run's last epoch; mean +- std
over seeds; nothing is selected on the test set.
Writes frozen_features.{md,json} in --out; each run is a workdir there.
"""
import pathlib
import sys

from absl import app
from absl import flags
import numpy as np

from lib import experiment

_OUT = flags.DEFINE_string("out", "runs/frozen", "Directory for runs, tables.")
_INIT_FROM = flags.DEFINE_string("init_from", None,
                                 "The pretrained workdir (or checkpoint).")
_BACKBONE = flags.DEFINE_string("backbone", "core_cnn",
                                "Its backbone, a model from ssl_jax.models.")
_LEVELS = flags.DEFINE_list("levels", "block1,block2,block3,pre_logits",
                            "Named features of the backbone to evaluate.")
_LABELS = flags.DEFINE_list("labels_per_class", "20,100,400",
                            "K: labeled images per class.")
_SEEDS = flags.DEFINE_list("seeds", "0", "Seeds: each its own label draw.")
_BASELINE = flags.DEFINE_bool("baseline", True,
                              "Also train the network from scratch at each K.")
_QUICK = flags.DEFINE_bool("quick", False, "Tiny runs, for the tests.")

FROZEN = {"cache_features": True, "input.augment.crop_padding": 0,
          "input.augment.flip": False, "model.head_dropout_rate": 0.0,
          "optimizer.learning_rate": 1e-3}
SCRATCH = {"optimizer.learning_rate": 1e-3}
QUICK = {"input.max_test_examples": 200, "input.eval_batch_size": 100,
         "input.batch_size": 16, "steps_per_epoch": 2, "num_epochs": 1,
         "model.backbone_config.features": (8, 16, 16),
         "model.backbone_config.dense": 32}


def _row(method: str, level: str, k: int, results: list[dict]) -> dict:
  acc = 100 * np.array([r["test_accuracy"] for r in results])
  return {"method": method, "level": level, "labels_per_class": k,
          "seeds": len(results),
          "test_accuracy": f"{acc.mean():.2f} +- {acc.std():.2f}",
          "per_seed": ", ".join(f"{a:.2f}" for a in acc),
          "test_accuracy_mean": acc.mean(),
          "wall_time_s": int(np.mean([r["wall_time_s"] for r in results]))}


def main(_):
  out = pathlib.Path(_OUT.value)
  config = f"configs/finetune.py:backbone={_BACKBONE.value}"
  quick = QUICK if _QUICK.value else {}
  rows = []
  for k in map(int, _LABELS.value):
    runs = {level: [experiment.run(
        f"{config},mode=linear", out / f"{level}_k{k}_s{s}",
        {**FROZEN, **quick, "seed": int(s), "input.labels_per_class": k,
         "model.feature_level": level, "init_from": _INIT_FROM.value})
                    for s in _SEEDS.value] for level in _LEVELS.value}
    rows += [_row("frozen, linear", level, k, r) for level, r in runs.items()]
    if _BASELINE.value:
      rows.append(_row("from scratch, all layers", "-", k, [experiment.run(
          config, out / f"scratch_k{k}_s{s}",
          {**SCRATCH, **quick, "seed": int(s), "input.labels_per_class": k})
          for s in _SEEDS.value]))
  print(experiment.write_results(
      out, "frozen_features", rows,
      ["method", "level", "labels_per_class", "seeds", "test_accuracy",
       "per_seed", "wall_time_s"], " ".join(["python"] + sys.argv)))


if __name__ == "__main__":
  flags.mark_flag_as_required("init_from")
  app.run(main)
