"""k-NN monitor curves of pretraining, one line per pretext task.

  python experiments/knn_curves.py --out=runs/knn_curves \
      --pretext=rotation,jigsaw,exemplar --epochs=10 --steps_per_epoch=100

Each pretext is `configs/pretrain.py:pretext=NAME`: the backbone learns
that pretext alone, and after every epoch the k-NN monitor (k = 200,
temperature 0.1, cosine similarity) classifies the test images from the
features of the labeled images only (200 by default). Writes
knn_curves.png (test k-NN accuracy against epoch, one line per pretext) and
knn_curves.{md,json}: each run's last epoch (k-NN and online linear probe),
as the reporting rule is the last epoch; nothing is selected on the test
set. Each run is a workdir in --out.
"""
import json
import pathlib
import sys

from absl import app
from absl import flags
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

from lib import experiment

_OUT = flags.DEFINE_string("out", "runs/knn_curves", "Directory for runs.")
_PRETEXT = flags.DEFINE_list("pretext", "rotation,jigsaw,exemplar",
                             "Pretext tasks, one pretraining run each.")
_BACKBONE = flags.DEFINE_string("backbone", "core_cnn", "The backbone.")
_EPOCHS = flags.DEFINE_integer("epochs", 10, "Epochs (k-NN points) per run.")
_STEPS = flags.DEFINE_integer("steps_per_epoch", 100,
                              "Steps per epoch; 0 = a pass over the pool.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed (and label draw) of every run.")
_QUICK = flags.DEFINE_bool("quick", False, "Tiny runs, for the tests.")

QUICK = {"input.max_test_examples": 200, "input.eval_batch_size": 100,
         "input.batch_size": 16, "input.unlabeled_batch_size": 16,
         "model.backbone_config.features": (8, 16, 16),
         "model.backbone_config.dense": 32}


def plot(curves: dict, path: pathlib.Path):
  """curves: {pretext: [(epoch, test k-NN accuracy), ...]}."""
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, points in curves.items():
    ax.plot(*zip(*points), marker="o", label=name)
  ax.set(xlabel="pretraining epoch", ylabel="test k-NN accuracy (%)",
         title="k-NN monitor (bank: the labeled images)")
  ax.legend()
  experiment.save_figure(fig, path)


def main(_):
  out = pathlib.Path(_OUT.value)
  overrides = {"seed": _SEED.value, "num_epochs": _EPOCHS.value,
               "steps_per_epoch": _STEPS.value,
               **(QUICK if _QUICK.value else {})}
  rows, curves = [], {}
  for name in _PRETEXT.value:
    workdir = out / name
    experiment.run(f"configs/pretrain.py:pretext={name},backbone="
                   f"{_BACKBONE.value}", workdir, overrides)
    records = [json.loads(l) for l in (workdir / "metrics.jsonl").open()]
    curves[name] = [(r["epoch"], 100 * r["test_knn_accuracy"])
                    for r in records]
    last = records[-1]
    rows.append({"pretext": name, "epochs": last["epoch"],
                 "test_knn_accuracy": 100 * last["test_knn_accuracy"],
                 "test_probe_accuracy": 100 * last["test_accuracy"],
                 "test_pretext_accuracy": 100 * last[f"test_{name}_accuracy"],
                 "wall_time_s": int(last["wall_time_s"])})
  plot(curves, out / "knn_curves.png")
  print(experiment.write_results(
      out, "knn_curves", rows,
      ["pretext", "epochs", "test_knn_accuracy", "test_probe_accuracy",
       "test_pretext_accuracy", "wall_time_s"], " ".join(["python"] + sys.argv)))


if __name__ == "__main__":
  app.run(main)
