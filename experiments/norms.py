"""The core CNN on CIFAR-10 with each normalization, 200 labels and all labels.

  python experiments/norms.py --out=runs/norms [--quick]

Writes runs/norms/norms.{md,json}; each run's workdir is runs/norms/<name>.
"""
import pathlib
import sys

from absl import app
from absl import flags

from lib import experiment

_OUT = flags.DEFINE_string("out", "runs/norms", "Directory for runs and table.")
_QUICK = flags.DEFINE_bool("quick", False, "Tiny runs, for the tests.")
_LABELS = flags.DEFINE_list("labels", "200,50000", "Label settings to run.")
_NORMS = flags.DEFINE_list("norms", "batch,layer,group,instance,rms,none",
                           "Normalizations to compare.")

# 200 labels: the supervised config as it is. All labels: one pass per epoch.
SETTINGS = {
    "200": {},
    "50000": {"input.labels_per_class": -1, "steps_per_epoch": 0,
                      "input.batch_size": 128, "num_epochs": 5,
                      "log_every_steps": 100},
}
QUICK = {"input.labels_per_class": 5, "steps_per_epoch": 3, "num_epochs": 1,
         "input.batch_size": 16, "input.max_test_examples": 200,
         "input.eval_batch_size": 100, "model.features": (8, 16, 16),
         "model.dense": 32}


def main(_):
  out = pathlib.Path(_OUT.value)
  rows = []
  for setting in _LABELS.value:
    overrides = SETTINGS[setting]
    if _QUICK.value:
      overrides = {**overrides, **QUICK}
    for norm in _NORMS.value:
      result = experiment.run("configs/supervised.py", out / f"{norm}_{setting}",
                              {**overrides, "model.norm": norm})
      rows.append({"labels": setting, "norm": norm, **result})
  print(experiment.write_results(
      out, "norms", rows,
      ["labels", "norm", "test_accuracy", "best_test_accuracy", "test_loss",
       "train_accuracy", "wall_time_s"], " ".join(["python"] + sys.argv)))


if __name__ == "__main__":
  app.run(main)
