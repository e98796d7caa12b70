"""Picks one of N runs (seeds) by training or validation error, never test.

Sukhbaatar et al. train each bAbI model 10 times and report the test error
of the run with the lowest training error; `pick` does that from the runs'
workdirs (`by='train'`), or by the held-out validation error (`by='val'`).
"""
import json
import pathlib

_SPLITS = ("train", "val")


def select(runs: dict[str, list[dict]], by: str = "val") -> str:
  """The name of the run whose last epoch has the lowest `by` error.

  `runs`: {name: epoch records}. Error is 1 - `{by}_accuracy`; ties go to
  the lower `{by}_loss`, then to the run given first. Test metrics are never
  read.
  """
  if by not in _SPLITS:
    raise ValueError(f"by must be one of {_SPLITS} (selecting on the test "
                     f"set would tune on it), got {by!r}.")
  last = {name: records[-1] for name, records in runs.items()}
  # min keeps the first of equal keys: the run given first.
  return min(last, key=lambda n: (1 - last[n][f"{by}_accuracy"],
                                  last[n][f"{by}_loss"]))


def read_records(workdir) -> list[dict]:
  path = pathlib.Path(workdir) / "metrics.jsonl"
  return [json.loads(l) for l in path.read_text().splitlines() if l]


def pick(workdirs, by: str = "val") -> dict:
  """The selected run's workdir, its `by` error and its last test numbers."""
  runs = {str(w): read_records(w) for w in workdirs}
  best = select(runs, by)
  last = runs[best][-1]
  return {"workdir": best, "selected_by": by,
          f"{by}_error": 1 - last[f"{by}_accuracy"],
          "test_error": 1 - last["test_accuracy"],
          "test_accuracy": last["test_accuracy"],
          "test_loss": last["test_loss"], "epoch": last["epoch"]}
