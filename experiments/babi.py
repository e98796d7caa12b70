"""Memory networks on every bAbI task found: per-task error table and plot.

  python experiments/babi.py --out=runs/babi_1k --size=1k --joint
  python experiments/babi.py --out=runs/babi_paper_10k --size=10k --paper
  python experiments/babi.py --out=runs/babi_ls20_10k --paper --ls=epochs
  python experiments/babi.py --out=runs/babi --models=memnet_keras,memn2n

MemN2N runs the authors' MemN2N-babi-matlab protocol (configs/memnet.py),
or with --paper the paper's text. At 1k each row shows, next to ours, that
code's published test errors (vinhkhuc/MemN2N-babi-python's benchmark page:
the MATLAB code and its NumPy port) and the port run here, where one ran.

Each run is runs/.../<model>_task<N>_seed<S> (joint: <model>_joint_seed<S>).
With --seeds=N each task trains N seeds and the table reports the one with
the lowest --select_by error (train or val, never test), as Sukhbaatar et
al.'s best of 10 (--reseed_above: only for tasks whose seed 0 trains badly).
Writes babi.{md,json} (per-task test error, mean, failed
tasks: error > 5%, next to the paper's mean), babi.png and, for tasks that
failed or ran several seeds, babi_curves_<model>.png (train error per epoch
of each seed).
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
from lib import selection
from ssl_jax.data import babi

_OUT = flags.DEFINE_string("out", "runs/babi", "Directory for runs and table.")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "bAbI release directory.")
_SIZE = flags.DEFINE_enum("size", "10k", ["10k", "1k"], "Training-set size.")
_MODELS = flags.DEFINE_list("models", "memn2n", "Models to run.")
_TASKS = flags.DEFINE_list("tasks", [], "bAbI tasks to run; [] = every task "
                          "found.")
_PAPER = flags.DEFINE_bool("paper", False, "memn2n: the paper's text, not "
                           "the authors' code (configs/memnet.py:paper).")
_LS = flags.DEFINE_enum("ls", "val_loss", ["val_loss", "epochs"],
                        "With --paper: linear start ends on the val loss (the "
                        "paper's text) or after 20 epochs (the authors' code).")
_JOINT = flags.DEFINE_bool("joint", False, "Also one model on all tasks.")
_SEEDS = flags.DEFINE_integer("seeds", 1, "Runs per task; one is reported.")
_JOINT_SEEDS = flags.DEFINE_integer("joint_seeds", 1, "Runs of the joint "
                                    "model (each as long as all tasks').")
_RESEED_ABOVE = flags.DEFINE_float(
    "reseed_above", 0., "Train seeds 1..N-1 of a task only if seed 0's "
    "training error (%) is above this (0: always). Decided on training "
    "error only, as the paper repeated runs where training varied.")
_SELECT_BY = flags.DEFINE_enum("select_by", "val", ["val", "train"],
                               "Which error picks the reported seed.")
_SAMPLING = flags.DEFINE_enum(
    "sampling", "", ["", "permutation", "replacement"], "memn2n: how an "
    "epoch draws its batches; '' = the config's (the code: replacement).")
_QUICK = flags.DEFINE_bool("quick", False, "Tiny runs, for the tests.")

# Sukhbaatar et al. (2015), Table 1, mean test error (%) over the 20 tasks:
# PE LS RN trained per task, and PE LS RN joint (10k: their best model).
PAPER_MEAN = {("10k", False): 4.2, ("1k", False): 13.9, ("1k", True): 12.4}
FAILED = 5.0  # A task fails at more than 5% test error (the paper's rule).
# 1k test error (%) of tasks 1-20, PE LS RN, from the benchmark page of
# vinhkhuc/MemN2N-babi-python: the authors' MATLAB code and that NumPy port,
# per task and joint (each one run).
REFERENCE_1K = {
    ("matlab", False): [0.1, 8.2, 41.8, 4.4, 13.7, 7.9, 20.3, 11.7, 13.6, 9.7,
                        0.7, 0.0, 0.3, 0.9, 0.0, 0.4, 51.0, 10.5, 81.4, 0.0],
    ("matlab", True): [0.0, 13.1, 23.4, 5.9, 12.9, 3.7, 22.9, 9.1, 2.7, 7.2,
                       0.8, 0.1, 0.1, 4.2, 0.0, 1.2, 43.6, 10.5, 86.7, 0.0],
    ("port", False): [0.5, 8.9, 41.4, 7.3, 12.2, 7.7, 19.8, 12.9, 13.9, 18.9,
                      0.5, 0.2, 0.9, 9.0, 0.0, 0.6, 49.1, 10.4, 90.8, 0.0],
    ("port", True): [0.1, 16.6, 26.3, 11.3, 14.4, 2.8, 16.0, 10.1, 2.3, 6.5,
                     1.2, 0.2, 0.5, 5.5, 0.3, 2.1, 42.6, 9.0, 90.2, 0.2],
}
# The NumPy port run on this machine (Python 3 fixes only: tuple(zip(*tmp))
# in CrossEntropyLoss, int for np.int), its seed 42, one core:
# `python babi_runner.py -d $BABI/en -t N`; test error (%) by task, on the
# first 992 test questions as that code counts (15-117 s per task).
PORT_HERE_1K = dict(enumerate(
    [0.5, 8.0, 55.0, 19.3, 10.5, 9.9, 22.2, 11.0, 17.0, 36.8, 0.5, 0.1, 0.3,
     1.5, 0.0, 0.8, 47.0, 12.1, 89.5, 0.0], start=1))


def _runs(model: str, task, out: pathlib.Path) -> list[pathlib.Path]:
  """Trains the seeds of one (model, task); returns their workdirs."""
  workdirs = []
  name = "joint" if task == "all" else f"task{task}"
  for seed in range(_JOINT_SEEDS.value if task == "all" else _SEEDS.value):
    overrides = {"input.data_dir": _DATA_DIR.value, "seed": seed}
    if _SAMPLING.value and model == "memn2n":
      overrides["input.sampling"] = _SAMPLING.value
    if _SIZE.value == "10k" and _PAPER.value and task == "all":
      # The paper's joint schedule at 10k: 20 epochs, halved every 5.
      overrides.update({"num_epochs": 20, "optimizer.decay_every_epochs": 5})
    arg = f"model={model},task={task},size={_SIZE.value}"
    if _PAPER.value and model == "memn2n":
      arg += ",paper" + (",ls=epochs" if _LS.value == "epochs" else "")
    arg += ",quick" if _QUICK.value else ""
    workdir = out / f"{model}_{name}_seed{seed}"
    last = experiment.run(f"configs/memnet.py:{arg}", workdir, overrides)
    workdirs.append(workdir)
    if seed == 0 and 100 * (1 - last["train_accuracy"]) <= _RESEED_ABOVE.value:
      break
  return workdirs


def _chosen(workdirs) -> dict:
  """The reported seed's numbers (selected on train/val when N > 1)."""
  by = _SELECT_BY.value
  records = selection.read_records(workdirs[0])
  if by == "val" and "val_accuracy" not in records[-1]:
    by = "train"  # No held-out split in this protocol.
  pick = selection.pick(workdirs, by)
  records = selection.read_records(pick["workdir"])
  # Epochs trained without the memory softmax, whichever rule ended them.
  ls = (sum(bool(r["model.linear_start"]) for r in records)
        if "model.linear_start" in records[-1] else None)
  return {"seed": pathlib.Path(pick["workdir"]).name.rsplit("seed", 1)[1],
          "selected_by": by, "selection_error": 100 * pick[f"{by}_error"],
          "linear_start_epochs": ls, "wall_time_s": records[-1]["wall_time_s"],
          "workdir": pick["workdir"]}


def _references(task: int, joint: bool) -> dict:
  """The authors' code's 1k numbers for `task` (none at 10k)."""
  if _SIZE.value != "1k":
    return {}
  out = {f"{k}_published": REFERENCE_1K[(k, joint)][task - 1]
         for k in ("matlab", "port")}
  if not joint and task in PORT_HERE_1K:
    out["port_here"] = PORT_HERE_1K[task]
  return out


def _mean_failed(errors) -> str:
  return (f"{sum(errors) / len(errors):.2f}%, "
          f"{sum(e > FAILED for e in errors)} failed")


def _summary(rows: list[dict], label: str, joint: bool) -> str:
  errors = [r["test_error"] for r in rows]
  paper = PAPER_MEAN.get((_SIZE.value, joint))
  out = (f"{label}: mean test error {_mean_failed(errors)} (> {FAILED:g}%) "
         f"over {len(errors)} tasks" +
         (f"; paper: {paper}%" if paper is not None else ""))
  for key in ("matlab_published", "port_published", "port_here"):
    if key in rows[0]:  # The code's numbers on the same tasks.
      out += f"; {key}: {_mean_failed([r[key] for r in rows])}"
  return out


def plot(rows: list[dict], path: pathlib.Path):
  """Per-task test error, one bar group per task, one bar per row label."""
  labels = sorted({r["run"] for r in rows})
  tasks = sorted({r["task"] for r in rows})
  width = 0.8 / len(labels)
  fig, ax = plt.subplots(figsize=(10, 4))
  for i, label in enumerate(labels):
    by_task = {r["task"]: r["test_error"] for r in rows if r["run"] == label}
    ax.bar([t + (i - (len(labels) - 1) / 2) * width for t in tasks],
           [by_task.get(t, 0) for t in tasks], width, label=label)
  ax.axhline(FAILED, color="gray", linestyle="--", linewidth=1)
  ax.set(xlabel="bAbI task", ylabel="test error (%)", xticks=tasks,
         title=f"bAbI {_SIZE.value}: per-task test error")
  ax.legend()
  experiment.save_figure(fig, path)


def plot_curves(curves: dict, path: pathlib.Path):
  """Training error per epoch of every seed of each task in `curves`
  ({task: (workdirs, chosen workdir)}), the chosen seed bold, with its
  validation error dashed: where a failed task's runs stalled."""
  fig, axes = plt.subplots(1, len(curves), figsize=(3.2 * len(curves), 3),
                           squeeze=False)
  for ax, (task, (workdirs, chosen)) in zip(axes[0], sorted(curves.items())):
    for w in workdirs:
      records = selection.read_records(w)
      epochs = [r["epoch"] for r in records]
      bold = str(w) == str(chosen)
      ax.plot(epochs, [100 * (1 - r["train_accuracy"]) for r in records],
              color="C0" if bold else "0.7", linewidth=2 if bold else 0.8,
              zorder=3 if bold else 1)
      if bold and "val_accuracy" in records[-1]:
        ax.plot(epochs, [100 * (1 - r["val_accuracy"]) for r in records],
                "C1--", linewidth=1, zorder=2)
    ax.set(title=f"task {task}: {len(workdirs)} seed(s)", xlabel="epoch",
           ylim=(0, 100))
  axes[0, 0].set_ylabel("train error (%); chosen: val dashed")
  experiment.save_figure(fig, path)


def main(_):
  out = pathlib.Path(_OUT.value)
  data_dir = _DATA_DIR.value or babi.default_babi_dir()
  tasks = babi.available_tasks(data_dir, _SIZE.value)
  if _TASKS.value:
    missing = sorted({int(t) for t in _TASKS.value} - set(tasks))
    if missing:
      raise app.UsageError(f"--tasks: bAbI {_SIZE.value} task(s) {missing} "
                           f"not found; found {tasks}.")
    tasks = [int(t) for t in _TASKS.value]
  if not tasks:
    babi.find_task_files(data_dir, 1, _SIZE.value)  # Raises: where it looked.
  rows, summaries, curves = [], [], {}
  for model in _MODELS.value:
    label = model + ("" if model != "memn2n" else
                     f" paper, LS {_LS.value}" if _PAPER.value else " code")
    done = []
    for task in tasks:
      workdirs = _runs(model, task, out)
      chosen = _chosen(workdirs)
      last = selection.read_records(chosen["workdir"])[-1]
      done.append({"run": label, "task": task, "model": model,
                   "test_error": 100 * (1 - last["test_accuracy"]), **chosen,
                   **(_references(task, False) if model == "memn2n" else {})})
      if len(workdirs) > 1 or done[-1]["test_error"] > FAILED:
        curves[(model, task)] = (workdirs, chosen["workdir"])
    rows += done
    summaries.append(_summary(done, label, False))
    if _JOINT.value:
      workdirs = _runs(model, "all", out)
      chosen = _chosen(workdirs)
      per_task = json.loads(
          (pathlib.Path(chosen["workdir"]) / "per_task_test.json").read_text())
      joint = [{"run": f"{label} joint", "task": int(t), "model": model,
                "test_error": 100 * (1 - a), **chosen,
                **(_references(int(t), True) if model == "memn2n" else {})}
               for t, a in per_task.items() if int(t) in tasks]
      rows += joint
      summaries.append(_summary(joint, f"{label} joint", True))
  columns = ["task", "run", "test_error", "matlab_published",
             "port_published", "port_here", "seed", "selected_by",
             "selection_error", "linear_start_epochs", "wall_time_s"]
  table = experiment.write_results(out, "babi", rows, columns,
                                   " ".join(["python"] + sys.argv))
  with (out / "babi.md").open("a") as f:
    f.write("\n" + "\n".join(summaries) + "\n")
  plot(rows, out / "babi.png")
  for model in _MODELS.value:
    mine = {t: c for (m, t), c in curves.items() if m == model}
    if mine:
      plot_curves(mine, out / f"babi_curves_{model}.png")
  print(table + "\n\n" + "\n".join(summaries))


if __name__ == "__main__":
  app.run(main)
