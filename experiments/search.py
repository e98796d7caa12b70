"""The seeds' random search over the CNN family (experiments/lib/search.py).

  python experiments/search.py --out=runs/search --trials=5 --epochs=5 [--quick]

Each trial trains configs/cnn.py with its drawn fields for --epochs epochs in
runs/search/trial_NNN, is scored on the 5,000 validation images, and lands in
leaderboard.{csv,md,json}; best.json holds the best trial's fields and the
command that re-runs it with the config's full epochs.
"""
import pathlib
import sys

from absl import app
from absl import flags

from lib import search

_OUT = flags.DEFINE_string("out", "runs/search", "Directory for trials.")
_TRIALS = flags.DEFINE_integer("trials", 5, "Trials (the seeds: 5).")
_EPOCHS = flags.DEFINE_integer("epochs", 5, "Epochs per trial (the seeds: 5).")
_SEED = flags.DEFINE_integer("seed", 0, "Draws the trials and seeds each run.")
_QUICK = flags.DEFINE_bool("quick", False, "Tiny runs, for the tests.")

CONFIG = "configs/cnn.py"


def main(_):
  config = CONFIG + (":quick" if _QUICK.value else "")
  overrides = {"seed": _SEED.value, "num_epochs": _EPOCHS.value,
               "early_stopping.patience": 0}  # Every trial gets its epochs.
  if _QUICK.value:
    overrides["num_epochs"] = 1
  out = pathlib.Path(_OUT.value)
  rows = search.run(config, out, _TRIALS.value, _SEED.value, overrides)
  print(search.write_leaderboard(out, rows, CONFIG,
                                 " ".join(["python"] + sys.argv)))


if __name__ == "__main__":
  app.run(main)
