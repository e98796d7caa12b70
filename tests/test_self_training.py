"""Self-training: the pool's labels come from the teacher, never the truth."""
import json
import shutil

import jax
import numpy as np
import pytest

from ssl_jax.data import input_pipeline
from ssl_jax.pretext import self_training
from ssl_jax.tasks import pretext_mix
from ssl_jax.tools import predict
from ssl_jax.train import loop

import helpers

# Threshold 0.15: the tiny teacher is unsure, so only some guesses are kept.
_STUDENT = {"num_epochs": 1, "steps_per_epoch": 3, "knn.k": 0,
            "input.max_test_examples": 100, "self_training.threshold": 0.15}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("teacher")
  loop.train_and_evaluate(
      helpers.tiny_config("multitask", "quick", num_epochs=1,
                          steps_per_epoch=6, **{"knn.k": 0}), workdir)
  return workdir


@pytest.fixture(autouse=True)
def small_pool(monkeypatch):
  """The first 400 pool images only: the teacher labels them in a second."""
  load = input_pipeline.load

  def first_rows(*args, **kwargs):
    data, info = load(*args, **kwargs)
    data["unlabeled"] = {k: v[:400] for k, v in data["unlabeled"].items()}
    return data, info
  monkeypatch.setattr(input_pipeline, "load", first_rows)


def _student(teacher, **overrides):
  return helpers.tiny_config("multitask", f"quick,teacher={teacher}",
                             **{**_STUDENT, **overrides})


def test_pseudo_labels_are_the_teachers_confident_guesses(tmp_path, teacher):
  config = _student(teacher)
  data = pretext_mix.setup(config, tmp_path, write=True).data["train"]
  n = 50  # 5 labels per class: rows [0, 50) are the labeled images.
  assert len(data["label"]) == n + 400
  images, labels = np.asarray(data["image"]), data["label"]
  probs = predict.Predictor(teacher)(images[n:])["class"]  # The reference.
  confident = probs.max(-1) >= 0.15
  assert 0 < confident.sum() < len(confident)
  np.testing.assert_array_equal(data["labeled"],
                                np.r_[np.ones(n), confident])
  np.testing.assert_array_equal(labels[n:], probs.argmax(-1))
  stats = json.loads((tmp_path / self_training.FILE).read_text())
  assert stats["pseudo_labeled"] == confident.sum()


def test_training_reads_no_true_labels_of_the_pool(tmp_path, teacher,
                                                    monkeypatch):
  """Swapping the pool's true labels changes nothing but the logged
  accuracy of the pseudo-labels."""
  def run(name):
    last = loop.train_and_evaluate(_student(teacher), tmp_path / name)
    stats = json.loads((tmp_path / name / self_training.FILE).read_text())
    return (last, helpers.read_checkpoint(tmp_path / name)["state"],
            stats["accuracy"])

  plain = run("plain")
  load = input_pipeline.load

  def swapped_load(*args, **kwargs):
    data, info = load(*args, **kwargs)
    pool = data["unlabeled"]["label"]
    data["unlabeled"]["label"] = np.random.default_rng(0).permutation(pool)
    return data, info

  monkeypatch.setattr(input_pipeline, "load", swapped_load)
  swapped = run("swapped")
  assert swapped[2] != plain[2]  # The swap reached the pool.
  assert helpers.untimed(swapped[0]) == helpers.untimed(plain[0])
  for c in ("params", "batch_stats", "opt_state"):
    jax.tree.map(np.testing.assert_array_equal, swapped[1][c], plain[1][c])


def test_teacher_for_other_images_is_an_error(tmp_path, teacher):
  other = tmp_path / "other"
  shutil.copytree(teacher, other)
  info = json.loads((other / input_pipeline.INFO_FILE).read_text())
  info["image_shape"] = [28, 28, 1]
  (other / input_pipeline.INFO_FILE).write_text(json.dumps(info))
  with pytest.raises(ValueError, match=r"teacher .* was trained on images "
                     r"\(28, 28, 1\) with 10 classes; this run has "
                     r"\(32, 32, 3\)"):
    pretext_mix.setup(_student(other), tmp_path / "run", write=False)
