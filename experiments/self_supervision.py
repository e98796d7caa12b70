"""Self-supervision with 200 CIFAR-10 labels: (A) supervised only, (B)
rotation pretraining + fine-tuning, (C) the two-head loss-weight sweep, and
the utility U(n) of self-supervision for several label budgets.

  python experiments/self_supervision.py --out=runs/ssl --parts=A,B     # 3 seeds each
  python experiments/self_supervision.py --out=runs/ssl --parts=C       # weight sweep
  python experiments/self_supervision.py --out=runs/ssl --parts=utility --budgets=200,500,1000,2000,5000

Every run is an ordinary, resumable workdir under --out (rerunning skips
finished ones); tables (.md, .json) and plots (.png) land in --out.
"""
import pathlib
import sys

from absl import app
from absl import flags
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from ssl_jax import experiment
from ssl_jax import utility

_OUT = flags.DEFINE_string("out", "runs/ssl", "Directory for runs, tables.")
_PARTS = flags.DEFINE_list("parts", "A,B,C,utility", "What to run.")
_SEEDS = flags.DEFINE_list("seeds", "0,1,2", "Seeds of (A), (B), (C).")
_PRETRAIN_EPOCHS = flags.DEFINE_integer("pretrain_epochs", 10,
                                        "Rotation pretraining epochs.")
_MULTITASK_EPOCHS = flags.DEFINE_integer("multitask_epochs", 10,
                                         "Epochs of the two-head runs.")
_MODES = flags.DEFINE_list("modes", "full,linear,frozen_blocks",
                           "Fine-tuning modes of (B).")
_WEIGHTS = flags.DEFINE_list("weights", "10:1,1:10,1:1,1:5,4:1,3:5",
                             "cls:rot loss weights of (C).")
_BUDGETS = flags.DEFINE_list("budgets", "200,500,1000,2000,5000",
                             "Label budgets n of U(n) (multiples of 10).")
_UTILITY_MODE = flags.DEFINE_string("utility_mode", "frozen_blocks",
                                    "Fine-tuning mode used for a_ft(n).")
_BACKBONE = flags.DEFINE_enum(
    "backbone", "core_cnn", ["core_cnn", "resnet"],
    "Backbone of (B) and (C); (A) is the seeds' core CNN, plus the same "
    "backbone from scratch when it is another.")
_REFERENCES = flags.DEFINE_multi_string(
    "reference", [], "LABEL=ACCURACY (%): a row of the (C) table and a line "
    "on its plot, e.g. a (B) mean from an earlier --parts=A,B table.")
_QUICK = flags.DEFINE_bool("quick", False, "Tiny runs, for the tests.")

QUICK = {"input.max_test_examples": 200, "input.eval_batch_size": 100,
         "input.batch_size": 16, "steps_per_epoch": 2, "num_epochs": 1}
TINY_CNN = {"model.features": (8, 16, 16), "model.dense": 32}
TINY_BACKBONE = {  # By --backbone: each has its own fields.
    "core_cnn": {"model.backbone_config.features": (8, 16, 16),
                 "model.backbone_config.dense": 32},
    "resnet": {"model.backbone_config.features": (8, 16, 16),
               "model.backbone_config.stem_features": 8},
}


def _run(config: str, name: str, overrides: dict) -> dict:
  quick = {}
  if _QUICK.value:
    tiny = TINY_CNN if "supervised" in config else {
        **TINY_BACKBONE[_BACKBONE.value], "input.unlabeled_batch_size": 16}
    quick = {**QUICK, **tiny}
    config += ("," if ":" in config else ":") + "quick"
  return experiment.run(config, pathlib.Path(_OUT.value) / name,
                        {**overrides, **quick})


def supervised(seed: int, labels: int = 200) -> dict:
  return _run("configs/supervised.py", f"supervised_n{labels}_s{seed}",
              {"seed": seed, "input.labels_per_class": labels // 10})


def _backbone() -> tuple[str, str]:
  """(config argument, workdir name part) of the --backbone."""
  if _BACKBONE.value == "core_cnn":
    return "", ""
  return f"backbone={_BACKBONE.value}", f"_{_BACKBONE.value}"


def scratch(seed: int, labels: int = 200) -> dict:
  """(A) with the --backbone: the fine-tuning config without init_from."""
  arg, name = _backbone()
  return _run(f"configs/finetune.py:mode=full,{arg}",
              f"supervised{name}_n{labels}_s{seed}",
              {"seed": seed, "input.labels_per_class": labels // 10,
               "optimizer.learning_rate": 1e-3})


def pretrain(seed: int) -> dict:
  arg, name = _backbone()
  return _run(f"configs/rotation.py:{arg}", f"rotation{name}_s{seed}",
              {"seed": seed, "num_epochs": _PRETRAIN_EPOCHS.value})


def finetune(seed: int, mode: str, labels: int = 200) -> dict:
  arg, name = _backbone()
  init = pathlib.Path(_OUT.value) / f"rotation{name}_s{seed}"
  return _run(f"configs/finetune.py:mode={mode},{arg}",
              f"finetune_{mode}{name}_n{labels}_s{seed}",
              {"seed": seed, "input.labels_per_class": labels // 10,
               "init_from": str(init)})


def multitask(seed: int, weights: str) -> dict:
  cls, rot = map(float, weights.split(":"))
  arg, name = _backbone()
  return _run(f"configs/multitask.py:{arg}",
              f"multitask{name}_{cls:g}to{rot:g}_s{seed}",
              {"seed": seed, "loss.class_weight": cls,
               "loss.rotation_weight": rot,
               "num_epochs": _MULTITASK_EPOCHS.value})


def _summary(name: str, results: list[dict], rotation_from=None) -> dict:
  """Mean +- std over seeds of the final epoch's test metrics."""
  acc = 100 * np.array([r["test_accuracy"] for r in results])
  rot = rotation_from or results
  rot = 100 * np.array([r["test_rotation_accuracy"] for r in rot
                        if "test_rotation_accuracy" in r])
  return {"method": name, "seeds": len(results),
          "test_accuracy": f"{acc.mean():.2f} +- {acc.std():.2f}",
          "per_seed": ", ".join(f"{a:.2f}" for a in acc),
          "test_accuracy_mean": acc.mean(), "test_accuracy_std": acc.std(),
          "rotation_accuracy": (f"{rot.mean():.2f} +- {rot.std():.2f}"
                                if rot.size else ""),
          "rotation_accuracy_mean": rot.mean() if rot.size else np.nan,
          "rotation_accuracy_std": rot.std() if rot.size else np.nan,
          "wall_time_s": int(np.mean([r["wall_time_s"] for r in results]))}


def _references() -> list[dict]:
  """--reference rows, as _summary's (accuracies only)."""
  rows = []
  for ref in _REFERENCES.value:
    label, _, acc = ref.rpartition("=")
    try:
      value = float(acc) if label else None
    except ValueError:
      value = None
    if value is None:
      raise app.UsageError(f"--reference={ref!r}: expected LABEL=ACCURACY, "
                           "e.g. '(B) fine-tune=47.36'.")
    rows.append({"method": label, "test_accuracy": acc,
                 "test_accuracy_mean": value})
  return rows


def _table(name: str, rows: list[dict], columns: list[str]):
  print(experiment.write_results(pathlib.Path(_OUT.value), name, rows,
                                 columns, " ".join(["python"] + sys.argv)))


def _save(fig, name: str):
  fig.tight_layout()
  fig.savefig(pathlib.Path(_OUT.value) / f"{name}.png", dpi=100)
  plt.close(fig)


def run_ab(seeds: list[int]) -> list[dict]:
  rows = [_summary("(A) supervised", [supervised(s) for s in seeds])]
  if _BACKBONE.value != "core_cnn":
    rows.append(_summary(f"(A) supervised, {_BACKBONE.value}",
                         [scratch(s) for s in seeds]))
  pretrained = [pretrain(s) for s in seeds]
  rows.append(_summary("(B) rotation pretraining, online linear probe",
                       pretrained))
  for mode in _MODES.value:
    rows.append(_summary(f"(B) fine-tune: {mode}",
                         [finetune(s, mode) for s in seeds], pretrained))
  _table("ab", rows, ["method", "seeds", "test_accuracy", "rotation_accuracy",
                      "wall_time_s"])
  fig, ax = plt.subplots(figsize=(8, 3.5))
  ax.barh([r["method"] for r in rows], [r["test_accuracy_mean"] for r in rows],
          xerr=[r["test_accuracy_std"] for r in rows])
  ax.set(xlabel="test accuracy (%), 200 labels", title="(A) vs (B)")
  _save(fig, "ab")
  return rows


def run_c(seeds: list[int], reference: list[dict]):
  rows = []
  for w in _WEIGHTS.value:
    results = [multitask(s, w) for s in seeds]
    rows.append({**_summary(f"(C) cls:rot = {w}", results), "weights": w,
                 "ratio": np.divide(*map(float, w.split(":")))})
  rows.sort(key=lambda r: r["ratio"])
  _table("multitask", rows + reference, [
      "method", "seeds", "test_accuracy", "per_seed", "rotation_accuracy",
      "wall_time_s"])
  fig, ax = plt.subplots(figsize=(6, 4))
  ratios = [r["ratio"] for r in rows]
  for key, marker, label in (("test_accuracy", "o", "class accuracy"),
                             ("rotation_accuracy", "s", "rotation accuracy")):
    ax.errorbar(ratios, [r[f"{key}_mean"] for r in rows],
                [r[f"{key}_std"] for r in rows], marker=marker, capsize=3,
                label=label)
  for i, r in enumerate(reference):  # C0, C1 are the two curves.
    ax.axhline(r["test_accuracy_mean"], ls="--", lw=1, color=f"C{i + 2}",
               label=r["method"])
  ax.set(xscale="log", xlabel="w_cls / w_rot", ylabel="test accuracy (%)")
  ax.set_xticks(ratios, [r["weights"] for r in rows])
  ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
  ax.legend(fontsize=7)
  _save(fig, "multitask")


def run_utility(seed: int):
  budgets = [int(n) for n in _BUDGETS.value]
  # From scratch with the same network as the fine-tuned one.
  from_scratch = supervised if _BACKBONE.value == "core_cnn" else scratch
  base = [from_scratch(seed, n)["test_accuracy"] for n in budgets]
  pretrain(seed)
  ssl = [finetune(seed, _UTILITY_MODE.value, n)["test_accuracy"]
         for n in budgets]
  u = utility.utility(budgets, base, ssl)
  rows = [{"n": n, "scratch_accuracy": a, "ssl_accuracy": b,
           "utility": utility.describe(x, n, budgets)}
          for n, a, b, x in zip(budgets, base, ssl, u)]
  _table("utility", rows, ["n", "scratch_accuracy", "ssl_accuracy", "utility"])
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
  ax1.plot(budgets, base, "o-", label="from scratch a(n)")
  ax1.plot(budgets, ssl, "s-", label=f"rotation + {_UTILITY_MODE.value} "
           "a_ft(n)")
  ax1.set(xscale="log", xlabel="labels n", ylabel="test accuracy")
  ax1.legend()
  ax2.plot(budgets, [x if np.isfinite(x) else np.nan for x in u], "o-")
  ax2.set(xscale="log", xlabel="labels n", ylabel="U(n) = n'/n - 1")
  for ax in (ax1, ax2):  # Label the budgets only: log minor labels overlap.
    ax.set_xticks(budgets, [str(n) for n in budgets])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
  _save(fig, "utility")


def main(_):
  seeds = [int(s) for s in _SEEDS.value]
  extra = _references()  # Checked before any run starts.
  reference = []
  if {"A", "B"} & set(_PARTS.value):
    reference = run_ab(seeds)
  if "C" in _PARTS.value:
    run_c(seeds, reference + extra)
  if "utility" in _PARTS.value:
    run_utility(seeds[0])


if __name__ == "__main__":
  app.run(main)
