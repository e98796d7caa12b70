"""Per-class reports of a classifier: confusion matrix, precision, recall, F1.

Accuracy alone hides which classes a model confuses; these files show it. The
numbers follow sklearn's `classification_report(output_dict=True,
zero_division=0)` (tests compare them), computed here in NumPy so training
does not depend on sklearn.
"""
import csv
import json
import pathlib

import jax.numpy as jnp
import matplotlib
matplotlib.use("Agg")  # Files only; no display on servers.
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

_METRICS = ("precision", "recall", "f1-score")


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
  """Counts: rows = true class, columns = predicted class."""
  labels, predictions = np.asarray(labels), np.asarray(predictions)
  for name, a in (("labels", labels), ("predictions", predictions)):
    if a.size and not 0 <= a.min() <= a.max() < num_classes:
      raise ValueError(f"{name} must lie in [0, {num_classes}), got values "
                       f"from {a.min()} to {a.max()}.")
  flat = labels.astype(np.int64) * num_classes + predictions
  return np.bincount(flat, minlength=num_classes**2).reshape(
      num_classes, num_classes)


def _divide(numerator, denominator):
  """Elementwise ratio, 0 where the denominator is 0 (zero_division=0)."""
  return np.divide(numerator, denominator, out=np.zeros(len(numerator)),
                   where=denominator > 0)


def classification_report(labels, predictions, class_names) -> dict:
  """Per-class and averaged scores, keyed like sklearn's output_dict.

  Returns {class name: {precision, recall, f1-score, support}, 'accuracy',
  'macro avg', 'weighted avg'}. Every class counts in the averages, also one
  never seen or predicted (scored 0), so reports of one model stay comparable
  across splits.
  """
  counts = confusion_matrix(labels, predictions, len(class_names))
  hits = np.diag(counts).astype(np.float64)
  support, predicted = counts.sum(1), counts.sum(0)
  scores = {"precision": _divide(hits, predicted),
            "recall": _divide(hits, support),
            "f1-score": _divide(2 * hits, support + predicted)}
  report = {name: {**{m: float(scores[m][i]) for m in _METRICS},
                   "support": int(support[i])}
            for i, name in enumerate(class_names)}
  total = int(support.sum())
  report["accuracy"] = float(hits.sum() / total)
  for key, weights in (("macro avg", None), ("weighted avg", support)):
    report[key] = {**{m: float(np.average(scores[m], weights=weights))
                      for m in _METRICS}, "support": total}
  return report


def format_report(report: dict, digits: int = 4) -> str:
  """The report as a text table laid out like sklearn's."""
  averages = ("macro avg", "weighted avg")
  classes = [k for k in report if k not in ("accuracy", *averages)]
  width = max(len("weighted avg"), *map(len, classes))

  def line(name, cells):
    return f"{name:>{width}} " + "".join(f" {c:>9}" for c in cells)

  def scores(name):
    r = report[name]
    return line(name, [f"{r[m]:.{digits}f}" for m in _METRICS] + [r["support"]])

  accuracy = line("accuracy", ["", "", f"{report['accuracy']:.{digits}f}",
                               report["macro avg"]["support"]])
  lines = [line("", [*_METRICS, "support"]), "", *map(scores, classes), "",
           accuracy, *map(scores, averages)]
  return "\n".join(lines) + "\n"


def plot_confusion_matrix(counts: np.ndarray, class_names, path, title: str):
  """A heatmap with the count in every cell and class names on the axes."""
  size = 2.5 + 0.6 * len(class_names)
  fig, ax = plt.subplots(figsize=(size + 1.5, size))
  image = ax.imshow(counts, cmap="Blues")
  fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
  ticks = np.arange(len(class_names))
  ax.set_xticks(ticks, class_names, rotation=45, ha="right")
  ax.set_yticks(ticks, class_names)
  threshold = counts.max() / 2
  for (i, j), n in np.ndenumerate(counts):
    ax.text(j, i, str(n), ha="center", va="center", fontsize=8,
            color="white" if n > threshold else "black")
  ax.set(xlabel="predicted class", ylabel="true class", title=title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def write(workdir, labels, predictions, class_names, split: str):
  """Writes `{split}_classification_report.{txt,json}` and
  `{split}_confusion_matrix.{csv,png}` into `workdir`."""
  workdir = pathlib.Path(workdir)
  report = classification_report(labels, predictions, class_names)
  (workdir / f"{split}_classification_report.txt").write_text(
      format_report(report))
  (workdir / f"{split}_classification_report.json").write_text(
      json.dumps(report, indent=2) + "\n")
  counts = confusion_matrix(labels, predictions, len(class_names))
  with (workdir / f"{split}_confusion_matrix.csv").open("w", newline="") as f:
    table = csv.writer(f)
    table.writerow(["true \\ predicted", *class_names])
    table.writerows([name, *row] for name, row in zip(class_names, counts))
  plot_confusion_matrix(counts, class_names,
                        workdir / f"{split}_confusion_matrix.png",
                        f"{split}: {len(labels)} examples")


def predict_classes(predict, task, split: dict, batch_size: int):
  """(labels, predicted classes) of an eval split's real (mask 1) examples.

  `predict(x)` returns (outputs, intermediates); outputs are logits or a dict
  with a 'class' entry. The argmax runs on the device, so each batch brings
  back only its predicted classes.
  """
  guesses = []
  for start in range(0, len(split["label"]), batch_size):
    batch = {k: v[start:start + batch_size] for k, v in split.items()}
    outputs, _ = predict(task.inputs(batch, None, train=False))
    logits = outputs["class"] if isinstance(outputs, dict) else outputs
    guesses.append(np.asarray(jnp.argmax(logits, -1)))
  keep = np.asarray(split["mask"]) > 0
  return np.asarray(split["label"])[keep], np.concatenate(guesses)[keep]
