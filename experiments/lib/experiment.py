"""Runs a set of configs (one ordinary, resumable run each) and tabulates them.

Used by the scripts in experiments/: each run is `python -m ssl_jax.main` in
its own workdir, so an interrupted sweep resumes where it stopped and every
row of a table can be reproduced alone.
"""
import json
import pathlib
import shlex
import subprocess
import sys
import time

from absl import logging


def main_command(config: str, workdir, overrides: dict) -> list[str]:
  """argv of `python -m ssl_jax.main` with --config.KEY=VALUE overrides."""
  args = [sys.executable, "-m", "ssl_jax.main", f"--config={config}",
          f"--workdir={workdir}"]
  for k, v in overrides.items():
    if isinstance(v, (tuple, list)):  # A literal config_flags parses.
      v = "(" + "".join(f"{json.dumps(x) if isinstance(x, str) else x}, "
                        for x in v) + ")"
    args.append(f"--config.{k}={v}")
  return args


def run(config: str, workdir: pathlib.Path, overrides: dict) -> dict:
  """Trains (or resumes) one run; returns its last record.

  A run that this function saw finish with the same command is not started
  again (workdir/done holds that command; delete it to force a rerun).
  """
  args = main_command(config, workdir, overrides)
  workdir = pathlib.Path(workdir)
  done = workdir / "done"
  if not (done.exists() and done.read_text() == shlex.join(args[1:])):
    logging.info("Running: %s", " ".join(args))
    start = time.time()
    log = workdir.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
      subprocess.run(args, stdout=f, stderr=subprocess.STDOUT, check=True)
    summary = workdir / "summary.txt"  # Written after the last epoch only.
    if not summary.exists() or summary.stat().st_mtime < start:
      raise RuntimeError(f"{workdir} stopped before its last epoch (SIGTERM?);"
                         f" rerun to resume it. Log: {log}")
    done.write_text(shlex.join(args[1:]))
  records = [json.loads(l) for l in (workdir / "metrics.jsonl").open()]
  return {**records[-1], "best_test_accuracy": max(r["test_accuracy"]
                                            for r in records)}


def save_figure(fig, path):
  """Writes a matplotlib figure (tight layout, 100 dpi) and closes it."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
  fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)
  lines = ["| " + " | ".join(columns) + " |",
           "|" + " --- |" * len(columns)]
  lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |"
            for r in rows]
  return "\n".join(lines)


def write_results(out_dir: pathlib.Path, name: str, rows: list[dict],
                  columns: list[str], command: str) -> str:
  """Writes NAME.json and NAME.md (table + command) in `out_dir`."""
  out_dir.mkdir(parents=True, exist_ok=True)
  (out_dir / f"{name}.json").write_text(json.dumps(rows, indent=2))
  table = markdown_table(rows, columns)
  (out_dir / f"{name}.md").write_text(f"Command: `{command}`\n\n{table}\n")
  return table
