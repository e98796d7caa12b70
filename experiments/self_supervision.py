"""Self-supervision with 200 CIFAR-10 labels: (A) supervised only, (B)
pretext pretraining + fine-tuning, (C) the class + pretext loss-weight
sweep, and the utility U(n) of self-supervision for several label budgets.

  python experiments/self_supervision.py --out=runs/ssl --parts=A,B     # 3 seeds each
  python experiments/self_supervision.py --out=runs/ssl --parts=C       # weight sweep
  python experiments/self_supervision.py --out=runs/ssl --parts=B,C \
      --pretext=rotation,jigsaw,exemplar,rotation+exemplar --seeds=0
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

from lib import experiment
from lib import utility

_OUT = flags.DEFINE_string("out", "runs/ssl", "Directory for runs, tables.")
_PARTS = flags.DEFINE_list("parts", "A,B,C,utility", "What to run.")
_SEEDS = flags.DEFINE_list("seeds", "0,1,2", "Seeds of (A), (B), (C).")
_PRETEXTS = flags.DEFINE_list(
    "pretext", "rotation", "Pretext choices, each a name from ssl_jax.pretext "
    "or a mix 'a+b'; (B) and (C) run for each, with a table of their own.")
_PRETRAIN_EPOCHS = flags.DEFINE_integer("pretrain_epochs", 10,
                                        "Pretext pretraining epochs.")
_MULTITASK_EPOCHS = flags.DEFINE_integer("multitask_epochs", 10,
                                         "Epochs of the two-head runs.")
_MODES = flags.DEFINE_list("modes", "full,linear,frozen_blocks",
                           "Fine-tuning modes of (B).")
_WEIGHTS = flags.DEFINE_list(
    "weights", "10:1,1:10,1:1,1:5,4:1,3:5", "cls:pretext loss weights of "
    "(C); in a mix, every pretext task gets the pretext weight.")
_BUDGETS = flags.DEFINE_list("budgets", "200,500,1000,2000,5000",
                             "Label budgets n of U(n) (multiples of 10).")
_UTILITY_MODE = flags.DEFINE_string("utility_mode", "frozen_blocks",
                                    "Fine-tuning mode used for a_ft(n).")
_BACKBONE = flags.DEFINE_string(
    "backbone", "core_cnn", "Backbone of (B) and (C), a model from "
    "ssl_jax.models; (A) is the seeds' core CNN, plus the same backbone from "
    "scratch when it is another.")
_REFERENCES = flags.DEFINE_multi_string(
    "reference", [], "LABEL=ACCURACY (%): a row of the (C) table and a line "
    "on its plot, e.g. a (B) mean from an earlier --parts=A,B table.")
_QUICK = flags.DEFINE_bool("quick", False, "Tiny runs, for the tests.")

QUICK = {"input.max_test_examples": 200, "input.eval_batch_size": 100,
         "input.batch_size": 16, "steps_per_epoch": 2, "num_epochs": 1}
TINY_CNN = {"model.features": (8, 16, 16), "model.dense": 32}
TINY_BACKBONE = {  # --quick shrinks these backbones; others run as they are.
    "core_cnn": {"model.backbone_config.features": (8, 16, 16),
                 "model.backbone_config.dense": 32},
    "resnet": {"model.backbone_config.features": (8, 16, 16),
               "model.backbone_config.stem_features": 8},
}


def _run(config: str, name: str, overrides: dict) -> dict:
  quick = {}
  if _QUICK.value:
    tiny = TINY_CNN if "supervised" in config else {
        **TINY_BACKBONE.get(_BACKBONE.value, {}),
        # Fine-tuning reads no unlabeled images.
        **({} if "finetune" in config else {"input.unlabeled_batch_size": 16})}
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


def _slug(choice: str) -> str:
  """A pretext choice in workdir and table names; rotation keeps the names
  of the runs before pretext tasks were plug-ins."""
  return "" if choice == "rotation" else "_" + choice.replace("+", "-")


def pretrain(seed: int, choice: str = "rotation") -> dict:
  arg, name = _backbone()
  return _run(f"configs/pretrain.py:pretext={choice},{arg}",
              f"{choice.replace('+', '-')}{name}_s{seed}",
              {"seed": seed, "num_epochs": _PRETRAIN_EPOCHS.value})


def finetune(seed: int, mode: str, labels: int = 200,
             choice: str = "rotation") -> dict:
  arg, name = _backbone()
  init = pathlib.Path(_OUT.value) / f"{choice.replace('+', '-')}{name}_s{seed}"
  return _run(f"configs/finetune.py:mode={mode},{arg}",
              f"finetune_{mode}{_slug(choice)}{name}_n{labels}_s{seed}",
              {"seed": seed, "input.labels_per_class": labels // 10,
               "init_from": str(init)})


def multitask(seed: int, weights: str, choice: str = "rotation") -> dict:
  cls, w = map(float, weights.split(":"))
  arg, name = _backbone()
  return _run(f"configs/multitask.py:pretext={choice},{arg}",
              f"multitask{_slug(choice)}{name}_{cls:g}to{w:g}_s{seed}",
              {"seed": seed, "classifier.weight": cls,
               **{f"pretext.{p}.weight": w for p in choice.split("+")},
               "num_epochs": _MULTITASK_EPOCHS.value})


def _mean_std(values) -> str:
  return f"{np.mean(values):.2f} +- {np.std(values):.2f}"


def _summary(name: str, results: list[dict], pretext_from=None) -> dict:
  """Mean +- std over seeds of the final epoch's test metrics; the pretext
  tasks' test accuracies from `pretext_from` (the pretraining runs)."""
  acc = 100 * np.array([r["test_accuracy"] for r in results])
  runs = pretext_from or results
  # test_<pretext>_accuracy; the k-NN monitor's test_knn*_accuracy is not
  # a pretext task.
  pretexts = sorted({k[len("test_"):-len("_accuracy")] for r in runs
                     for k in r if k.startswith("test_") and
                     k.endswith("_accuracy") and k != "test_accuracy"
                     and not k.startswith("test_knn")})
  scores = {p: 100 * np.array([r[f"test_{p}_accuracy"] for r in runs])
            for p in pretexts}
  return {"method": name, "seeds": len(results),
          "test_accuracy": _mean_std(acc),
          "per_seed": ", ".join(f"{a:.2f}" for a in acc),
          "test_accuracy_mean": acc.mean(), "test_accuracy_std": acc.std(),
          "pretext_accuracy": "; ".join(f"{p} {_mean_std(v)}"
                                        for p, v in scores.items()),
          **{f"{p}_accuracy_mean": v.mean() for p, v in scores.items()},
          **{f"{p}_accuracy_std": v.std() for p, v in scores.items()},
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


def run_ab(seeds: list[int], choice: str) -> list[dict]:
  rows = []
  if "A" in _PARTS.value:
    rows.append(_summary("(A) supervised", [supervised(s) for s in seeds]))
    if _BACKBONE.value != "core_cnn":
      rows.append(_summary(f"(A) supervised, {_BACKBONE.value}",
                           [scratch(s) for s in seeds]))
  if "B" in _PARTS.value:
    pretrained = [pretrain(s, choice) for s in seeds]
    rows.append(_summary(f"(B) {choice} pretraining, online linear probe",
                         pretrained))
    for mode in _MODES.value:
      rows.append(_summary(f"(B) {choice}, fine-tune: {mode}",
                           [finetune(s, mode, choice=choice) for s in seeds],
                           pretrained))
  _table(f"ab{_slug(choice)}", rows, [
      "method", "seeds", "test_accuracy", "pretext_accuracy", "wall_time_s"])
  fig, ax = plt.subplots(figsize=(8, 3.5))
  ax.barh([r["method"] for r in rows], [r["test_accuracy_mean"] for r in rows],
          xerr=[r["test_accuracy_std"] for r in rows])
  ax.set(xlabel="test accuracy (%), 200 labels", title="(A) vs (B)")
  _save(fig, f"ab{_slug(choice)}")
  return rows


def run_c(seeds: list[int], reference: list[dict], choice: str) -> list[dict]:
  rows = []
  for w in _WEIGHTS.value:
    results = [multitask(s, w, choice) for s in seeds]
    rows.append({**_summary(f"(C) {choice}, cls:pretext = {w}", results),
                 "weights": w, "ratio": np.divide(*map(float, w.split(":")))})
  rows.sort(key=lambda r: r["ratio"])
  name = f"multitask{_slug(choice)}"
  _table(name, rows + reference, [
      "method", "seeds", "test_accuracy", "per_seed", "pretext_accuracy",
      "wall_time_s"])
  fig, ax = plt.subplots(figsize=(6, 4))
  ratios = [r["ratio"] for r in rows]
  curves = [("test_accuracy", "class accuracy")] + [
      (f"{p}_accuracy", f"{p} accuracy") for p in choice.split("+")]
  for i, (key, label) in enumerate(curves):
    ax.errorbar(ratios, [r[f"{key}_mean"] for r in rows],
                [r[f"{key}_std"] for r in rows], marker="os^v"[i % 4],
                capsize=3, label=label)
  for i, r in enumerate(reference):  # The curves take the first colours.
    ax.axhline(r["test_accuracy_mean"], ls="--", lw=1,
               color=f"C{i + len(curves)}", label=r["method"])
  ax.set(xscale="log", xlabel="w_cls / w_pretext", ylabel="test accuracy (%)")
  ax.set_xticks(ratios, [r["weights"] for r in rows])
  ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
  ax.legend(fontsize=7)
  _save(fig, name)
  return rows


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
  rows = []
  for choice in _PRETEXTS.value:
    reference = []
    if {"A", "B"} & set(_PARTS.value):
      reference = run_ab(seeds, choice)
      rows += reference
    if "C" in _PARTS.value:
      rows += run_c(seeds, reference + extra, choice)
  if len(_PRETEXTS.value) > 1:  # Every choice side by side (A once).
    once = {r["method"]: r for r in rows}
    _table("pretexts", list(once.values()), [
        "method", "seeds", "test_accuracy", "pretext_accuracy",
        "wall_time_s"])
  if "utility" in _PARTS.value:
    run_utility(seeds[0])


if __name__ == "__main__":
  app.run(main)
