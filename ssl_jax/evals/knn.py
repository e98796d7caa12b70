"""Weighted k-NN evaluation of a backbone's features (InstDisc, solo-learn).

Each query's k most cosine-similar bank features vote for their labels
with weight exp(similarity / temperature); the class with the most weight
wins. As a pretraining monitor (`config.knn`, every epoch) the bank is the
labeled training images only, the labels the protocol allows
(`{split}_knn_accuracy`); `knn.all_labels` adds `{split}_knn_all_labels_accuracy`,
a bank of every training image with its label: a representation-quality
measure that uses labels the semi-supervised protocol does not.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np


@functools.partial(jax.jit, static_argnames=("num_classes", "k", "chunk"))
def predict(queries, bank, bank_labels, *, num_classes: int, k: int,
            temperature: float, chunk: int = 256) -> jax.Array:
  """Class predictions (Q,) for `queries` (Q, D) from `bank` (N, D) with
  `bank_labels` (N,); queries go `chunk` rows at a time (Q x N at once would
  not fit for large banks)."""
  normalize = lambda x: x / jnp.maximum(
      jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
  bank, k = normalize(bank.astype(jnp.float32)), min(k, bank.shape[0])
  q = queries.shape[0]
  padded = jnp.pad(queries.astype(jnp.float32), ((0, -q % chunk), (0, 0)))

  def one(rows):
    sims, idx = jax.lax.top_k(normalize(rows) @ bank.T, k)
    votes = jax.nn.one_hot(bank_labels[idx], num_classes) * jnp.exp(
        sims / temperature)[..., None]
    return votes.sum(1).argmax(-1)
  out = jax.lax.map(one, padded.reshape(-1, chunk, padded.shape[-1]))
  return out.reshape(-1)[:q]


def features(fn, variables, images: np.ndarray, batch_size: int) -> jax.Array:
  """`fn(variables, {'image': batch})` over `images`, `batch_size` at a time
  (the last batch padded so one compilation serves all)."""
  n = len(images)
  out = []
  for i in range(0, n, batch_size):
    batch = images[i:i + batch_size]
    pad = batch_size - len(batch)
    batch = np.concatenate([batch, np.repeat(batch[-1:], pad, 0)])
    out.append(fn(variables, {"image": batch})[:batch_size - pad])
  return jnp.concatenate(out)


def monitor(config, features_fn, data: dict, labeled: int, num_classes: int):
  """variables -> {'{split}_knn_accuracy': ...} for every eval split of
  `data` (host arrays, eval splits with a 'mask'); the bank is the first
  `labeled` training images (and all of them with `knn.all_labels`)."""
  c = config.knn
  fn = jax.jit(features_fn)
  train = data["train"]
  evals = {s: d for s, d in data.items() if s != "train"}
  bs = config.input.eval_batch_size

  def run(variables) -> dict:
    bank_size = len(train["label"]) if c.all_labels else labeled
    bank = features(fn, variables, train["image"][:bank_size], bs)
    banks = {"knn": slice(0, labeled)}
    if c.all_labels:
      banks["knn_all_labels"] = slice(0, bank_size)
    out = {}
    for split, d in evals.items():
      n = int(d["mask"].sum()) if "mask" in d else len(d["label"])
      queries = features(fn, variables, d["image"][:n], bs)
      for name, rows in banks.items():
        guess = predict(queries, bank[rows], jnp.asarray(train["label"][rows]),
                        num_classes=num_classes, k=c.k,
                        temperature=c.temperature)
        out[f"{split}_{name}_accuracy"] = float(
            np.mean(np.asarray(guess) == d["label"][:n]))
    return out
  return run
