"""k-NN monitor curves of pretraining, one line per method.

  python experiments/knn_curves.py --out=runs/knn_curves \
      --pretext=rotation,jigsaw,simclr,byol,dino --epochs=5 \
      --steps_per_epoch=rotation:120,byol:60 --backbone=resnet --all_labels

Each method is `configs/pretrain.py:pretext=NAME`: the backbone learns
that method alone, and after every epoch the k-NN monitor (k = 200,
temperature 0.1, cosine similarity) classifies the test images from the
features of the labeled images only (200 by default) and, with
--all_labels, from all training images with their labels. Methods cost
different times per step: --steps_per_epoch takes one number for all or
NAME:STEPS per method, so each gets the same wall-clock budget by measured
speed. Writes knn_curves.png (test k-NN accuracy against wall time, one
line per method; a panel per bank) and knn_curves.{md,json}: each run's
last epoch, as the reporting rule is the last epoch; nothing is selected
on the test set. Each run is a workdir in --out.
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
_STEPS = flags.DEFINE_list(
    "steps_per_epoch", ["100"],
    "Steps per epoch: one number for every method, or NAME:STEPS entries "
    "(0 = a pass over the pool).")
_ALL_LABELS = flags.DEFINE_bool(
    "all_labels", False, "Also the k-NN bank of all training labels.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed (and label draw) of every run.")
_QUICK = flags.DEFINE_bool("quick", False, "Tiny runs, for the tests.")

QUICK = {"input.max_test_examples": 200, "input.eval_batch_size": 100,
         "input.batch_size": 16, "input.unlabeled_batch_size": 16,
         "model.backbone_config.features": (8, 16, 16),
         "model.backbone_config.dense": 32}


BANKS = {"knn_accuracy": "bank: the labeled images",
         "knn_all_labels_accuracy": "bank: all training labels"}


def steps_per_epoch(entries: list[str], name: str) -> int:
  """The steps of method `name` from --steps_per_epoch."""
  table = dict(e.split(":", 1) for e in entries if ":" in e)
  plain = [e for e in entries if ":" not in e]
  if name not in table and not plain:
    raise ValueError(f"--steps_per_epoch has no entry for {name!r}.")
  return int(table.get(name, plain[0] if plain else 0))


def plot(curves: dict, path: pathlib.Path):
  """curves: {bank metric: {method: [(wall seconds, accuracy), ...]}}."""
  fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4),
                           squeeze=False)
  for ax, (metric, lines) in zip(axes[0], curves.items()):
    for name, points in lines.items():
      ax.plot(*zip(*points), marker="o", label=name)
    ax.set(xlabel="pretraining wall time (s)",
           ylabel="test k-NN accuracy (%)", title=f"k-NN, {BANKS[metric]}")
    ax.legend()
  experiment.save_figure(fig, path)


def main(_):
  out = pathlib.Path(_OUT.value)
  rows, curves = [], {m: {} for m in BANKS
                      if m == "knn_accuracy" or _ALL_LABELS.value}
  for name in _PRETEXT.value:
    workdir = out / name
    experiment.run(f"configs/pretrain.py:pretext={name},backbone="
                   f"{_BACKBONE.value}", workdir, {
                       "seed": _SEED.value, "num_epochs": _EPOCHS.value,
                       "steps_per_epoch": steps_per_epoch(_STEPS.value, name),
                       "knn.all_labels": _ALL_LABELS.value,
                       **(QUICK if _QUICK.value else {})})
    records = [json.loads(l) for l in (workdir / "metrics.jsonl").open()]
    for metric, lines in curves.items():
      lines[name] = [(r["wall_time_s"], 100 * r[f"test_{metric}"])
                     for r in records]
    last = records[-1]
    rows.append({
        "pretext": name, "epochs": last["epoch"], "steps": last["step"],
        **{f"test_{m}": 100 * last[f"test_{m}"] for m in curves},
        "test_probe_accuracy": 100 * last["test_accuracy"],
        "wall_time_s": int(last["wall_time_s"])})
  plot(curves, out / "knn_curves.png")
  print(experiment.write_results(
      out, "knn_curves", rows,
      ["pretext", "epochs", "steps", *[f"test_{m}" for m in curves],
       "test_probe_accuracy", "wall_time_s"],
      " ".join(["python"] + sys.argv)))


if __name__ == "__main__":
  app.run(main)
