"""Per-class reports against sklearn, the files they write, padding dropped."""
import csv
import json

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics

from ssl_jax.evals import class_report
from ssl_jax.tasks import Task

NAMES = ("cat", "dog", "bird", "fish", "never seen", "never predicted")


def _random_labels(seed, n=300):
  """Labels and predictions where class 4 never occurs and 5 is never
  predicted, so every zero-division path runs."""
  rng = np.random.default_rng(seed)
  labels = rng.choice([0, 1, 2, 3, 5], n)
  predictions = np.where(rng.random(n) < 0.5, labels,
                         rng.choice([0, 1, 2, 3, 4], n))
  return labels, np.where(predictions == 5, 4, predictions)


@pytest.mark.parametrize("seed", range(5))
def test_report_equals_sklearn(seed):
  labels, predictions = _random_labels(seed)
  assert 4 not in labels and 5 not in predictions
  ours = class_report.classification_report(labels, predictions, NAMES)
  theirs = metrics.classification_report(
      labels, predictions, labels=range(len(NAMES)), target_names=NAMES,
      output_dict=True, zero_division=0)
  assert ours.keys() == theirs.keys()
  assert ours["accuracy"] == pytest.approx(theirs["accuracy"], rel=1e-12)
  for key in (*NAMES, "macro avg", "weighted avg"):
    assert ours[key].keys() == theirs[key].keys()
    for metric, value in theirs[key].items():
      assert ours[key][metric] == pytest.approx(value, rel=1e-12), (key, metric)
  np.testing.assert_array_equal(
      class_report.confusion_matrix(labels, predictions, len(NAMES)),
      metrics.confusion_matrix(labels, predictions, labels=range(len(NAMES))))


def test_format_report_lists_every_row():
  labels, predictions = _random_labels(0)
  report = class_report.classification_report(labels, predictions, NAMES)
  text = class_report.format_report(report)
  for key in (*NAMES, "accuracy", "macro avg", "weighted avg"):
    assert key in text
  assert f"{report['macro avg']['f1-score']:.4f}" in text


def test_out_of_range_class_is_an_error():
  with pytest.raises(ValueError, match="predictions must lie in"):
    class_report.confusion_matrix([0, 1], [0, 3], 3)


def test_write_creates_files(tmp_path):
  labels = np.array([0, 0, 1, 2, 2, 2])
  predictions = np.array([0, 1, 1, 2, 0, 2])
  names = ("a", "b", "c")
  class_report.write(tmp_path, labels, predictions, names, "test")
  for suffix in ("classification_report.txt", "classification_report.json",
                 "confusion_matrix.csv", "confusion_matrix.png"):
    assert (tmp_path / f"test_{suffix}").stat().st_size > 0
  with (tmp_path / "test_confusion_matrix.csv").open() as f:
    rows = list(csv.reader(f))
  assert rows[0][1:] == list(names)
  assert [r[0] for r in rows[1:]] == list(names)
  # Rows are true classes, columns predictions.
  assert [[int(c) for c in r[1:]] for r in rows[1:]] == [
      [1, 1, 0], [0, 1, 0], [1, 0, 2]]
  report = json.loads((tmp_path / "test_classification_report.json").read_text())
  assert report["accuracy"] == pytest.approx(4 / 6)
  assert report["c"]["support"] == 3
  assert report["a"]["precision"] == pytest.approx(1 / 2)


@pytest.mark.parametrize("dict_outputs", [False, True])
def test_predict_classes_drops_padding(dict_outputs):
  # A fake model whose predicted class is the image's first pixel; the
  # padding predicts class 2, which must not reach the report.
  n, pad, batch_size = 7, 3, 5
  rng = np.random.default_rng(0)
  guesses = rng.integers(0, 3, n)
  images = np.zeros((n + pad, 2, 2, 1), np.uint8)
  images[:n, 0, 0, 0], images[n:, 0, 0, 0] = guesses, 2
  split = {"image": images,
           "label": np.concatenate([rng.integers(0, 3, n), np.zeros(pad)]),
           "mask": np.concatenate([np.ones(n), np.zeros(pad)])}
  calls = []

  def predict(x):
    calls.append(len(x))
    logits = jnp.eye(3)[x[:, 0, 0, 0]]
    return ({"class": logits, "rotation": logits} if dict_outputs
            else logits), {}

  task = Task(inputs=lambda batch, rng, train: batch["image"].astype(int),
              loss=None)
  labels, predictions = class_report.predict_classes(predict, task, split,
                                                     batch_size)
  assert calls == [5, 5]
  np.testing.assert_array_equal(labels, split["label"][:n])
  np.testing.assert_array_equal(predictions, guesses)
