"""`make run`: the main job next to the labels alone, at a demo budget.

  python experiments/demo.py --out=runs/demo

Two runs side by side (one per core), each a plain resumable run of
`python -m ssl_jax.main`: two heads (class + rotation, 200 labels and the
unlabeled pool; configs/multitask.py:demo) and the same backbone, steps and
labeled batches on the labels alone (:demo,pretext=none). Ends with a table
of their test accuracy, rotation accuracy and wall time, and the paths of
what they wrote.
"""
import concurrent.futures
import pathlib

from absl import app
from absl import flags

from lib import experiment

_OUT = flags.DEFINE_string("out", "runs/demo", "Directory for the two runs.")
_QUICK = flags.DEFINE_bool("quick", False, "The smoke budget (:quick), for "
                           "the tests.")

RUNS = (("two heads: class + rotation", "two_heads", ""),
        ("labels alone, same backbone and steps", "labels_only",
         ",pretext=none"))


def table(results: list[tuple[str, pathlib.Path, dict]]) -> str:
  """The terminal table: one row per run, then the files to look at."""
  pct = lambda r, k: f"{100 * r[k]:.2f}%" if k in r else "-"
  rows = [f"{'run':40} {'test acc':>9} {'rotation acc':>13} {'wall':>7}"]
  rows += [f"{name:40} {pct(r, 'test_accuracy'):>9} "
           f"{pct(r, 'test_rotation_accuracy'):>13} {r['wall_time_s']:>6}s"
           for name, _, r in results]
  for name, workdir, _ in results:
    rows.append(f"{name}: {workdir / 'curves.png'}, "
                f"{workdir / 'test_classification_report.txt'}, "
                f"{workdir / 'test_confusion_matrix.png'}")
  rows.append(f"Classify your own images: python -m ssl_jax.tools.predict "
              f"--workdir={results[0][1]} IMAGE.png")
  return "\n".join(rows)


def main(argv):
  del argv
  out = pathlib.Path(_OUT.value)
  arg = "quick" if _QUICK.value else "demo"
  jobs = [(name, out / sub, f"configs/multitask.py:{arg}{extra}")
          for name, sub, extra in RUNS]
  with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
    records = list(pool.map(lambda j: experiment.run(j[2], j[1], {}), jobs))
  text = table([(name, workdir, r) for (name, workdir, _), r in
                zip(jobs, records)])
  (out / "demo.txt").write_text(text + "\n")
  print(text)


if __name__ == "__main__":
  app.run(main)
