"""What a run writes and prints: metrics.jsonl, TensorBoard, progress, curves.

Only process 0 writes files. Metric records are flat dicts with `epoch`,
`step`, `wall_time_s` (since the run began, resumes included) and
`{split}_{metric}` keys (train_loss, test_accuracy, ...).
"""
import json
import logging as py_logging
import pathlib
import sys
import time

from absl import logging
import matplotlib
matplotlib.use("Agg")  # Files only; no display on servers.
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np


def quiet_library_logs():
  """Hides Orbax's per-save INFO chatter so progress lines stay readable."""
  py_logging.getLogger("absl").addFilter(
      lambda r: r.levelno > py_logging.INFO or "/orbax/" not in r.pathname)


def reduce_metrics(sums: dict, prefix: str) -> dict[str, float]:
  """{name: [sum, count]} -> {prefix_name: sum / count}."""
  return {f"{prefix}_{k}": float(s / c) if c else float("nan")
          for k, (s, c) in sums.items()}


class MetricsLog:
  """Appends epoch records to metrics.jsonl and TensorBoard; keeps history.

  On resume the history is the one `saved` with the checkpoint of
  `resume_step`, so epochs re-run after a crash are not recorded twice, and
  a metrics.jsonl cut off mid-line, garbled or missing lines is rewritten
  from it (with a warning naming the epochs restored). Without a saved
  history (checkpoints written before records were saved with them) it is
  the file's records up to `resume_step`, and an unreadable line is an
  error that names it.
  """

  def __init__(self, workdir: pathlib.Path, write: bool, resume_step: int,
               saved: list[dict] | None = None):
    self.path = workdir / "metrics.jsonl"
    self.write = write
    found = _read_records(self.path, saved is None)
    if saved is None:
      self.history = [r for r in found if r["step"] <= resume_step]
    else:
      self.history = list(saved)
      restored = [r["epoch"] for r in saved if r not in found]
      if restored and write:
        logging.warning("%s lacked the records of epoch(s) %s (cut off or "
                        "garbled): rewritten from the checkpoint of step %d.",
                        self.path, restored, resume_step)
    self._tb = None
    if write:
      self.path.write_text("".join(json.dumps(r) + "\n" for r in self.history))
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._tb = SummaryWriter(str(workdir / "tensorboard"))

  def add(self, record: dict):
    self.history.append(record)
    if not self.write:
      return
    with self.path.open("a") as f:
      f.write(json.dumps(record) + "\n")
    for k, v in record.items():
      if k not in ("epoch", "step"):
        self._tb.add_scalar(k, v, record["step"])
    self._tb.flush()

  def close(self):
    if self._tb is not None:
      self._tb.close()


def _read_records(path: pathlib.Path, strict: bool) -> list[dict]:
  """The records of a metrics.jsonl; an unreadable line is skipped, or with
  `strict` an error that names it."""
  if not path.exists():
    return []
  out = []
  for i, line in enumerate(path.read_text().splitlines(), start=1):
    try:
      out.append(json.loads(line))
    except json.JSONDecodeError:
      if strict:
        raise ValueError(f"{path}, line {i}, is not a JSON record (cut off "
                         f"or garbled) and no checkpoint holds the records to"
                         f" rebuild it from: repair or remove that line, then"
                         " rerun.") from None
  return out


class Progress:
  """Progress every `log_every_steps`: steps, loss, examples/s and ETA.

  On a terminal, one bar redrawn in place (`stream`, default stderr when it
  is a tty); elsewhere (log files, CI), a log line each time.
  """

  def __init__(self, total_steps: int, first_step: int, batch_size: int,
               stream=None):
    self.total, self.batch_size = total_steps, batch_size
    self._t0, self._s0 = time.perf_counter(), first_step
    self._bar = stream if stream is not None else (
        sys.stderr if sys.stderr.isatty() else None)
    self._drawn = False

  def log(self, step: int, epoch: int, loss: float):
    dt = time.perf_counter() - self._t0
    rate = (step - self._s0) / dt if dt > 0 else 0.0
    eta = (self.total - step) / rate if rate > 0 else float("inf")
    eta_s = time.strftime("%H:%M:%S", time.gmtime(eta)) if np.isfinite(
        eta) else "?"
    if self._bar is None:
      logging.info("step %d/%d (epoch %d): loss %.4f, %.1f steps/s, "
                   "%.0f examples/s, ETA %s", step, self.total, epoch, loss,
                   rate, rate * self.batch_size, eta_s)
      return
    done = int(30 * step / max(self.total, 1))
    self._bar.write(f"\r[{'#' * done}{'.' * (30 - done)}] step {step}/"
                    f"{self.total} (epoch {epoch}) loss {loss:.4f} "
                    f"{rate * self.batch_size:.0f} img/s ETA {eta_s} ")
    self._bar.flush()
    self._drawn = True

  def newline(self):
    """Ends the bar's line, so the next log line starts on its own."""
    if self._drawn:
      self._bar.write("\n")
      self._drawn = False


def best_epochs(history: list[dict], split: str) -> dict[str, tuple]:
  """{'loss': (min, epoch), 'accuracy': (max, epoch)} of one eval split."""
  out = {}
  for metric, pick in (("loss", np.argmin), ("accuracy", np.argmax)):
    key = f"{split}_{metric}"
    rows = [r for r in history if key in r]
    if rows:
      i = int(pick([r[key] for r in rows]))
      out[metric] = (rows[i][key], rows[i]["epoch"])
  return out


def summary_lines(history: list[dict], split: str) -> list[str]:
  """The seeds' lines: 'Min val loss is X at epoch E', 'Max val accuracy ...'."""
  best = best_epochs(history, split)
  lines = []
  if "loss" in best:
    lines.append(f"Min {split} loss is {best['loss'][0]:.4f} at epoch "
                 f"{best['loss'][1]}")
  if "accuracy" in best:
    lines.append(f"Max {split} accuracy is {best['accuracy'][0]:.4f} at epoch "
                 f"{best['accuracy'][1]}")
  return lines


def plot_curves(history: list[dict], split: str, path: pathlib.Path):
  """Loss and accuracy per epoch, train vs `split`, best epoch marked."""
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  epochs = [r["epoch"] for r in history]
  best = best_epochs(history, split)
  for ax, metric in zip(axes, ("loss", "accuracy")):
    for s in ("train", split):
      key = f"{s}_{metric}"
      if any(key in r for r in history):
        ax.plot(epochs, [r.get(key, np.nan) for r in history], label=s)
    if metric in best:
      value, epoch = best[metric]
      ax.axvline(epoch, color="gray", ls="--", lw=1)
      ax.plot([epoch], [value], "k*", ms=10,
              label=f"best {split}: {value:.4f} @ {epoch}")
    ax.set(xlabel="epoch", ylabel=metric, title=metric)
    ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
