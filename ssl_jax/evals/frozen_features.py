"""A head trained on cached features of a frozen backbone (`cache_features`).

With the backbone frozen and the images unaugmented, the backbone's output
never changes: it is computed once (jitted, sharded over the mesh, in
chunks), cached in workdir/features/, and only the head trains, on the
device-resident features. The seeds' frozen transfer (EfficientNet at
224x224, 20 epochs) then costs one forward pass over the data instead of
twenty. The run ends as a normal training run does: metrics.jsonl, summary,
and a checkpoint of the whole model (backbone + trained head) that
`ssl_jax.tools.predict` reads.
"""
import json
import re
import time

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ssl_jax import config_check
from ssl_jax import losses
from ssl_jax.data import input_pipeline
from ssl_jax.models import heads
from ssl_jax.models import multihead
from ssl_jax.train import loop
from ssl_jax.train import optim
from ssl_jax.train import parallel
from ssl_jax.train import reporting
from ssl_jax.train import workdir as workdir_lib

HEAD = "class_head"  # MultiHead's parameters of the 'class' head.


def check(config):
  """The conditions under which cached features equal the training run's."""
  if config.model.name != "multihead":
    raise ValueError("cache_features needs model.name='multihead' (a backbone"
                     f" with heads), got {config.model.name!r}.")
  if not re.search(config.optimizer.frozen_params or "$^",
                   "backbone/any/kernel"):
    raise ValueError("cache_features needs a frozen backbone: set "
                     "optimizer.frozen_params='^backbone/'.")
  aug = config.input.augment
  if aug.crop_padding or aug.flip:
    raise ValueError("cache_features trains on features of unaugmented "
                     "images: set input.augment.crop_padding=0 and "
                     "input.augment.flip=False.")


def extract(run: loop.Run, variables: dict, split: str) -> np.ndarray:
  """Features of every (unpadded) example of `split`, in order."""
  data = run.setup.data[split]
  n = len(data["label"])
  if "mask" in data:  # Padded eval splits: their real examples come first.
    n = int(data["mask"].sum())
  b = run.config.input.eval_batch_size
  table = (np.arange(-(-n // b) * b, dtype=np.int32) % n).reshape(-1, b)
  fn = jax.jit(multihead.backbone_features(run.config.model,
                                           run.setup.task.inputs),
               out_shardings=parallel.replicated(run.runner.mesh))
  chunks, start = [], time.perf_counter()
  for i, batch in enumerate(run.feed.batches(split, table)):
    chunks.append(np.asarray(fn(variables, batch)))
    if (i + 1) % max(table.shape[0] // 20, 1) == 0:  # ~20 progress lines.
      rate = (i + 1) * b / (time.perf_counter() - start)
      logging.info("%s features: %d/%d images, %.0f images/s, ETA %s", split,
                   min((i + 1) * b, n), n, rate, time.strftime(
                       "%H:%M:%S", time.gmtime(max(n - (i + 1) * b, 0) / rate)))
  return np.concatenate(chunks)[:n]


def cached_features(run: loop.Run, variables: dict, split: str) -> dict:
  """{'features', 'label'} of `split`, from workdir/features/ if they were
  made from the same backbone source, level and input pipeline."""
  c = run.config
  key = {"init_from": c.init_from, "model": c.model.to_dict(),
         "input": {k: v for k, v in c.input.to_dict().items()
                   if k not in ("batch_size", "eval_batch_size")},
         "seed": c.seed}
  root = run.workdir / "features"
  path, meta = root / f"{split}.npz", root / f"{split}.json"
  if path.exists() and meta.exists() and json.loads(
      meta.read_text()) == json.loads(json.dumps(key)):
    with np.load(path) as f:
      logging.info("Cached %s features: %s.", split, path)
      return dict(f)
  logging.info("Computing %s features (once; cached in %s).", split, root)
  labels = run.setup.data[split]["label"]
  out = {"features": extract(run, variables, split)}
  out["label"] = labels[:len(out["features"])]
  if run.is_main:
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"{split}.tmp.npz"
    np.savez(tmp, **out)
    tmp.replace(path)  # Atomic: a killed run leaves no half-written cache.
    meta.write_text(json.dumps(key))
  return out


def _head(config, num_classes: int) -> nn.Module:
  return heads.MLPHead(num_classes, tuple(config.classifier.hidden),
                       config.model.head_dropout_rate,
                       config.model.get("dtype", None))


def train_head(config, params: dict, train_data: dict, eval_data: dict,
               log=None) -> tuple[dict, list[dict]]:
  """Trains the class head from `params` on features; returns (params,
  epoch records).

  Batches are drawn as the training loop draws them (`epoch_indices` of the
  config's seed), an epoch runs as one jitted scan, and every eval split is
  scored after each epoch. Dropout on the features, as MultiHead applies it.
  """
  n, b = len(train_data["label"]), config.input.batch_size
  steps = config.steps_per_epoch or max(n // b, 1)
  total = steps * config.num_epochs
  num_classes = params["out"]["bias"].shape[0]
  head, rate = _head(config, num_classes), config.model.head_dropout_rate
  _, train_rng, data_rng = jax.random.split(jax.random.key(config.seed), 3)
  # The head alone trains here: nothing of it is frozen.
  opt = ml_collections.ConfigDict(config.optimizer.to_dict())
  opt.frozen_params = ""
  tx = optim.make_optimizer(opt, total)
  opt_state = tx.init(params)
  schedule = optim.make_schedule(config.optimizer, total)
  feats, labels = jnp.asarray(train_data["features"]), jnp.asarray(
      train_data["label"])

  def loss_fn(p, x, y, rng):
    keep = jax.random.bernoulli(rng, 1 - rate, x.shape) if rate else 1
    x = x * keep / (1 - rate)
    logits = head.apply({"params": p}, x, train=True, rngs={"dropout": rng})
    mask = jnp.ones(y.shape, jnp.float32)
    return losses.masked_cross_entropy(logits, y, mask)

  @jax.jit
  def epoch(params, opt_state, epoch_index):
    table = input_pipeline.epoch_indices(
        jax.random.fold_in(data_rng, epoch_index), n, steps, b)

    def step(carry, i):
      p, s = carry
      rng = jax.random.fold_in(train_rng, epoch_index * steps + i)
      (loss, metrics), g = jax.value_and_grad(loss_fn, has_aux=True)(
          p, feats[table[i]], labels[table[i]], rng)
      updates, s = tx.update(g, s, p)
      return (optax.apply_updates(p, updates), s), metrics
    (params, opt_state), metrics = jax.lax.scan(
        step, (params, opt_state), jnp.arange(steps))
    return params, opt_state, jax.tree.map(lambda m: m.sum(0), metrics)

  @jax.jit
  def scores(params, x, y):
    logits = head.apply({"params": params}, x, train=False)
    return losses.masked_cross_entropy(logits, y, jnp.ones(y.shape))[1]

  history, start = [], time.perf_counter()
  for e in range(config.num_epochs):
    params, opt_state, sums = epoch(params, opt_state, e)
    record = {"epoch": e + 1, "step": (e + 1) * steps,
              "learning_rate": float(schedule((e + 1) * steps - 1)),
              **reporting.reduce_metrics(jax.device_get(sums), "train")}
    for split, d in eval_data.items():
      record.update(reporting.reduce_metrics(jax.device_get(scores(
          params, jnp.asarray(d["features"]), jnp.asarray(d["label"]))),
          split))
    record["wall_time_s"] = round(time.perf_counter() - start)
    logging.info("epoch %d: %s", e + 1, json.dumps(record))
    if log is not None:
      log.add(record)
    history.append(record)
  return params, history


def train_and_evaluate(config, workdir: str) -> dict:
  """`loop.train_and_evaluate` for a frozen backbone, on cached features."""
  config_check.check(config)
  check(config)
  lock = workdir_lib.Lock(workdir) if jax.process_index() == 0 else None
  try:
    run, state = loop.build(config, workdir)
    # The head trains from build's initialisation, as in training; an
    # interrupted run (nothing saved before the end) trains it anew.
    head = jax.device_get(state.params[HEAD])
    state, sums = loop.restore(run, state)
    if lock is not None:
      lock.accept()
      workdir_lib.write_config(run.workdir, config)
    if int(state.step) >= run.total_steps:  # Done before: nothing to redo.
      return reporting.MetricsLog(run.workdir, False, int(state.step)
                                  ).history[-1]
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    splits = {s: cached_features(run, variables, s)
              for s in ("train",) + run.eval_splits}
    log = reporting.MetricsLog(run.workdir, run.is_main, resume_step=0)
    try:
      params, history = train_head(config, head, splits.pop("train"), splits,
                                   log)
    finally:
      log.close()
    params = parallel.put_replicated(jax.device_get(params), run.runner.mesh)
    state = state.replace(step=jnp.full_like(state.step, run.total_steps),
                          params={**state.params, HEAD: params})
    loop.save(run, run.total_steps, state, sums, history)
    run.ckpts.close()
    loop.finish(run, state, history)
    return history[-1]
  finally:
    if lock is not None:
      lock.release()
