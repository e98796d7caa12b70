"""The seeds' CNN ablations (SEEDS.md section 4), one run per row, one table.

  python experiments/ablations.py --out=runs/ablations [--epochs=N] [--quick]

Every row is configs/cnn.py (two 3x3 convs per block, Dense 128, Adam 1e-3,
ReLU, 45,000 training images, early stopping with patience 5) with one thing
changed; runs/ablations/<row>/ is its workdir. SGD and RMSprop run at
Keras's default learning rates (0.01, 1e-3); AdaDelta at 1.0, as in its
paper (Zeiler 2012; Keras now defaults to 1e-3).
"""
import pathlib
import sys

from absl import app
from absl import flags

from lib import experiment

_OUT = flags.DEFINE_string("out", "runs/ablations", "Directory for runs.")
_EPOCHS = flags.DEFINE_integer("epochs", 30, "Epochs per run (at most).")
_ONLY = flags.DEFINE_list("only", [], "Rows to run; default all.")
_QUICK = flags.DEFINE_bool("quick", False, "Tiny runs, for the tests.")

CONFIG = "configs/cnn.py"
ROWS = {  # row -> (what is ablated, overrides of configs/cnn.py)
    "baseline": ("baseline: 1 hidden dense, relu, adam, 45k, 2x 3x3, early stop", {}),
    "dense0": ("0 hidden dense layers", {"model.dense": 0}),
    "dense2": ("2 hidden dense layers", {"model.head_hidden": (128,)}),
    "sigmoid": ("sigmoid activations", {"model.activation": "sigmoid"}),
    "tanh": ("tanh activations", {"model.activation": "tanh"}),
    "sgd": ("SGD, lr 0.01", {"optimizer.name": "sgd",
                             "optimizer.learning_rate": 1e-2}),
    "momentum": ("SGD + Nesterov momentum 0.9, lr 0.01", {
        "optimizer.name": "momentum", "optimizer.learning_rate": 1e-2}),
    "rmsprop": ("RMSProp, lr 1e-3", {"optimizer.name": "rmsprop"}),
    "adadelta": ("AdaDelta, lr 1.0", {"optimizer.name": "adadelta",
                                      "optimizer.learning_rate": 1.0}),
    "images6000": ("6,000 training images", {"input.labels_per_class": 600}),
    "conv7x7": ("one 7x7 conv per block", {"model.convs_per_block": 1,
                                           "model.kernel_size": 7}),
    "no_early_stopping": ("no early stopping", {"early_stopping.patience": 0}),
}


def main(_):
  out = pathlib.Path(_OUT.value)
  config = CONFIG + (":quick" if _QUICK.value else "")
  unknown = set(_ONLY.value) - set(ROWS)
  if unknown:
    raise app.UsageError(f"Unknown rows {sorted(unknown)}; rows: {list(ROWS)}")
  table = []
  for name, (what, overrides) in ROWS.items():
    if _ONLY.value and name not in _ONLY.value:
      continue
    epochs = {} if _QUICK.value else {"num_epochs": _EPOCHS.value}
    result = experiment.run(config, out / name, {**overrides, **epochs})
    table.append({"row": name, "ablation": what, **result})
  print(experiment.write_results(
      out, "ablations", table,
      ["row", "ablation", "test_accuracy", "val_accuracy", "train_accuracy",
       "epoch", "wall_time_s"], " ".join(["python"] + sys.argv)))


if __name__ == "__main__":
  app.run(main)
