"""The weighted k-NN classifier and the pretraining monitor (knn.py)."""
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.evals import knn

import helpers


def _numpy_knn(queries, bank, labels, num_classes, k, temperature):
  """One query at a time: cosine similarities, the k largest, weighted votes."""
  unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
  out = []
  for q in unit(queries):
    sims = unit(bank) @ q
    top = np.argsort(-sims)[:k]
    votes = np.zeros(num_classes)
    for i in top:
      votes[labels[i]] += np.exp(sims[i] / temperature)
    out.append(int(np.argmax(votes)))
  return np.array(out)


@pytest.mark.parametrize("k, chunk", [(10, 16), (7, 64), (500, 8)])
def test_predict_matches_numpy_votes(k, chunk):
  rng = np.random.default_rng(k)
  queries = rng.normal(size=(37, 8)).astype(np.float32)
  bank = rng.normal(size=(50, 8)).astype(np.float32)
  labels = rng.integers(0, 5, 50)
  got = knn.predict(queries, bank, labels, num_classes=5, k=k,
                    temperature=0.1, chunk=chunk)
  np.testing.assert_array_equal(
      got, _numpy_knn(queries, bank, labels, 5, min(k, 50), 0.1))


def test_monitor_banks_and_masks():
  """The labeled bank is the first `labeled` training rows; all_labels adds
  every row; padded eval rows (mask 0) are not scored."""
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (30, 2, 2, 3), dtype=np.uint8)
  labels = rng.integers(0, 3, 30)
  test = {"image": rng.integers(0, 256, (12, 2, 2, 3), dtype=np.uint8),
          "label": rng.integers(0, 3, 12), "mask": np.repeat([1., 0.], [9, 3])}
  config = helpers.load_config("pretrain", "quick")
  config.knn.update({"k": 4, "all_labels": True})
  config.input.eval_batch_size = 8
  flat = lambda variables, batch: jnp.asarray(
      batch["image"].reshape(len(batch["image"]), -1), jnp.float32)
  got = knn.monitor(config, flat, {"train": {"image": images,
                                             "label": labels},
                                   "test": test}, 10, 3)({})
  queries = test["image"][:9].reshape(9, -1).astype(np.float64)
  for name, rows in (("knn", 10), ("knn_all_labels", 30)):
    guess = _numpy_knn(queries, images[:rows].reshape(rows, -1).astype(float),
                       labels[:rows], 3, 4, 0.1)
    assert got[f"test_{name}_accuracy"] == pytest.approx(
        np.mean(guess == test["label"][:9]))
