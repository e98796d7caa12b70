"""Random search over the seeds' CNN family (SEEDS.md section 4), with optuna.

optuna rather than a hand-written loop: its samplers (random here, as the
seeds' Keras Tuner run; TPE or others by swapping one object) handle the
conditional space (filters and pooling per block exist only for the blocks a
trial has) and the ask/tell bookkeeping. Each trial is an ordinary run of
`python -m ssl_jax.main` in its own workdir, ranked by validation accuracy,
never test accuracy.
"""
import csv
import json
import pathlib
import shlex

import optuna

from lib import experiment

# The seeds' space: conv blocks 3-5, filters 32-128 step 32 and max/avg
# pooling per block, dropout, dense units 64-256 step 32, learning rate.
BLOCKS = (3, 5)
FILTERS = (32, 128, 32)
POOLING = ("max", "avg")
DROPOUT = (0.3, 0.4, 0.5)
DENSE = (64, 256, 32)
LEARNING_RATE = (1e-2, 1e-3, 1e-4)


def suggest(trial: optuna.Trial) -> dict:
  """One trial's config overrides, drawn from the space above."""
  blocks = trial.suggest_int("blocks", *BLOCKS)
  lo, hi, step = FILTERS
  features = tuple(trial.suggest_int(f"filters{i + 1}", lo, hi, step=step)
                   for i in range(blocks))
  pooling = tuple(trial.suggest_categorical(f"pool{i + 1}", POOLING)
                  for i in range(blocks))
  lo, hi, step = DENSE
  return {
      "model.features": features,
      "model.pool_types": pooling,
      "model.pool_sizes": (2,) * blocks,  # 32 -> 1 pixel after 5 blocks.
      "model.dropout_rate": trial.suggest_categorical("dropout", DROPOUT),
      "model.dense": trial.suggest_int("dense", lo, hi, step=step),
      "optimizer.learning_rate": trial.suggest_categorical("learning_rate",
                                                           LEARNING_RATE),
  }


def draw(num_trials: int, seed: int) -> tuple[optuna.Study, list]:
  """A study and its first `num_trials` trials, the same for the same seed.

  Random sampling does not depend on earlier results, so all trials can be
  drawn up front: a resumed search redraws exactly the trials it ran.
  """
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  study = optuna.create_study(
      direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
  trials = [study.ask() for _ in range(num_trials)]
  return study, [(t, suggest(t)) for t in trials]


def run(config: str, out: pathlib.Path, num_trials: int, seed: int,
        overrides: dict) -> list[dict]:
  """Runs (or resumes) every trial; returns rows, best validation first."""
  study, trials = draw(num_trials, seed)
  rows = []
  for trial, suggested in trials:
    workdir = out / f"trial_{trial.number:03d}"
    result = experiment.run(config, workdir, {**overrides, **suggested})
    study.tell(trial, result["val_accuracy"])
    rows.append({"trial": trial.number, "workdir": str(workdir),
                 **{k.split(".")[-1]: v for k, v in suggested.items()},
                 "val_accuracy": result["val_accuracy"],
                 "test_accuracy": result["test_accuracy"],
                 "wall_time_s": result["wall_time_s"],
                 "overrides": {**overrides, **suggested}})
  return sorted(rows, key=lambda r: -r["val_accuracy"])


COLUMNS = ["trial", "features", "pool_types", "dropout_rate", "dense",
           "learning_rate", "val_accuracy", "test_accuracy", "wall_time_s"]


def write_leaderboard(out: pathlib.Path, rows: list[dict], config: str,
                      command: str) -> str:
  """leaderboard.csv/.md, and best.json: the best trial's overrides and the
  command that re-runs it (with the config's own epochs)."""
  out.mkdir(parents=True, exist_ok=True)
  with (out / "leaderboard.csv").open("w", newline="") as f:
    writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
  table = experiment.write_results(out, "leaderboard", rows, COLUMNS, command)
  best = rows[0]
  overrides = {k: v for k, v in best["overrides"].items()
               if k.startswith(("model.", "optimizer."))}
  rerun = experiment.main_command(config, out / "best_rerun", overrides)
  (out / "best.json").write_text(json.dumps(
      {"trial": best["trial"], "val_accuracy": best["val_accuracy"],
       "overrides": overrides,
       "rerun": shlex.join(["python"] + rerun[1:])}, indent=2))
  return table
