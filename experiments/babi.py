"""Both memory networks on every bAbI task found; a per-task accuracy table.

  python experiments/babi.py --out=runs/babi [--data_dir=DIR] [--size=10k]

Writes runs/babi/babi.{md,json}; each run's workdir is runs/babi/<model>_task<N>.
"""
import pathlib
import sys

from absl import app
from absl import flags

from lib import experiment
from ssl_jax.data import babi

_OUT = flags.DEFINE_string("out", "runs/babi", "Directory for runs and table.")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "bAbI release directory.")
_SIZE = flags.DEFINE_enum("size", "10k", ["10k", "1k"], "Training-set size.")
_MODELS = flags.DEFINE_list("models", "memnet_keras,memn2n", "Models to run.")
_TASKS = flags.DEFINE_list("tasks", [], "bAbI tasks to run; [] = every task "
                          "found.")
_QUICK = flags.DEFINE_bool("quick", False, "Tiny runs, for the tests.")


def available_tasks(data_dir: str, size: str) -> list[int]:
  tasks = []
  for task in range(1, 21):
    try:
      babi.find_task_files(data_dir or babi.default_babi_dir(), task, size)
      tasks.append(task)
    except FileNotFoundError:
      pass
  return tasks


def main(_):
  out = pathlib.Path(_OUT.value)
  tasks = available_tasks(_DATA_DIR.value, _SIZE.value)
  if _TASKS.value:
    missing = sorted({int(t) for t in _TASKS.value} - set(tasks))
    if missing:
      raise app.UsageError(f"--tasks: bAbI {_SIZE.value} task(s) {missing} "
                           f"not found; found {tasks}.")
    tasks = [int(t) for t in _TASKS.value]
  if not tasks:
    babi.find_task_files(_DATA_DIR.value or babi.default_babi_dir(), 1,
                         _SIZE.value)  # Raises, saying where it looked.
  rows = []
  for task in tasks:
    for model in _MODELS.value:
      overrides = {"input.data_dir": _DATA_DIR.value,
                   "input.babi_size": _SIZE.value}
      arg = f"model={model},task={task}" + (",quick" if _QUICK.value else "")
      result = experiment.run(f"configs/memnet.py:{arg}",
                              out / f"{model}_task{task}", overrides)
      rows.append({"task": task, "model": model, **result})
  print(experiment.write_results(
      out, "babi", rows, ["task", "model", "test_accuracy",
                          "best_test_accuracy", "epoch", "wall_time_s"],
      " ".join(["python"] + sys.argv)))


if __name__ == "__main__":
  app.run(main)
