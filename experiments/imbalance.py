"""The seeds' class-imbalance experiment (SEEDS.md section 4), one table.

  python experiments/imbalance.py --out=runs/imbalance [--epochs=N] [--quick]

Three runs of configs/cnn.py: all training images; 90% of the cats and dogs
dropped (seeded); the same, rebalanced with on-device augmented copies
(rotation up to 30 degrees, shifts up to 20%, brightness and zoom
0.85-1.15). The table shows test accuracy and per-class recall, from each
workdir's test_classification_report.json.
"""
import json
import pathlib
import sys

from absl import app
from absl import flags

from lib import experiment

_OUT = flags.DEFINE_string("out", "runs/imbalance", "Directory for runs.")
_EPOCHS = flags.DEFINE_integer("epochs", 30, "Epochs per run (at most).")
_ROWS = flags.DEFINE_list("rows", ["full", "imbalance", "rebalance"],
                          "Runs, by configs/cnn.py argument ('full' = none).")
_QUICK = flags.DEFINE_bool("quick", False, "Tiny runs, for the tests.")


def main(_):
  out = pathlib.Path(_OUT.value)
  rows = []
  for name in _ROWS.value:
    args = [a for a in (name if name != "full" else "",
                        "quick" if _QUICK.value else "") if a]
    config = "configs/cnn.py" + (":" + ",".join(args) if args else "")
    epochs = {} if _QUICK.value else {"num_epochs": _EPOCHS.value}
    result = experiment.run(config, out / name, epochs)
    report = json.loads((out / name / "test_classification_report.json")
                        .read_text())
    recalls = {f"{c} recall": report[c]["recall"]
               for c in ("cat", "dog", "airplane", "truck")}
    rows.append({"run": name, **result, **recalls})
  print(experiment.write_results(
      out, "imbalance", rows,
      ["run", "test_accuracy", "cat recall", "dog recall", "airplane recall",
       "truck recall", "epoch", "wall_time_s"], " ".join(["python"] + sys.argv)))


if __name__ == "__main__":
  app.run(main)
