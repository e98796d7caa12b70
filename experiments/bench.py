r"""Speed, side by side: our jitted steps against the Keras equivalents.

  make bench                       # = python experiments/bench.py --out=runs/bench
  python experiments/bench.py --out=/tmp/b --only=core_cnn_b32,memnet

Each workload runs ours and Keras's (tensorflow-cpu: the same architecture,
batch size and float32) alternately, `--repeats` times after a warm-up, and
reports the medians in examples/s, their ratio, and our step's achieved
GFLOP/s (XLA cost analysis) next to this machine's float32 matmul GFLOP/s,
measured in the same run. The streaming rows set our streaming input path
(`input.pipeline='stream'`) against our on-device path instead, the input
alone and feeding the train step; the bfloat16 row our step in bfloat16
against Keras's `mixed_bfloat16` policy. Writes bench.json and bench.md.
"""
import functools
import json
import os
import pathlib
import platform
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
# pylint: disable=g-import-not-at-top,wrong-import-position
from ssl_jax import losses
from ssl_jax import pretext
from ssl_jax.data import feeds
from ssl_jax.models import get_model
from ssl_jax.models import keras_reference
from ssl_jax.models.heads import HeadSpec
from ssl_jax.pretext import mix
from ssl_jax.pretext import rotation
from ssl_jax.tasks import classification
from ssl_jax.tasks import pretext_mix
from ssl_jax.tasks import Task
from ssl_jax.train import parallel
from ssl_jax.train import step as step_lib

_OUT = flags.DEFINE_string("out", "runs/bench", "Where bench.json/.md go.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repeats per side.")
_ONLY = flags.DEFINE_list("only", [], "Workload names to run; [] = all.")
_ROTATION_BATCH = flags.DEFINE_integer(
    "rotation_batch", 32, "Batch size of the rotation epoch (Keras fit's "
    "default, which the seeds' pipeline used).")
_QUICK = flags.DEFINE_bool("quick", False, "Tiny sizes, for the tests.")

# Ratio targets (ours / the reference) from the performance issues; None:
# measured, no target. The stream step may lose at most 10% to the device
# path: then the input is not what limits the step.
TARGETS = {"core_cnn": 1.5, "memnet": 3.0, "efficientnet_b0": 1.2,
           "rotation_epoch": 3.0, "stream_step": 0.9, None: None}


def machine() -> dict:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  cpu = platform.processor()
  try:
    cpu = next(line.split(":", 1)[1].strip()
               for line in open("/proc/cpuinfo") if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
          "jax": jax.__version__, "tensorflow": tf.__version__,
          "jax_devices": str(jax.devices())}


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
  """This machine's float32 matmul speed through XLA."""
  a = jax.random.normal(jax.random.key(0), (n, n))
  f = jax.jit(lambda a: a @ a)
  f(a).block_until_ready()
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    f(a).block_until_ready()
    times.append(time.perf_counter() - t)
  return 2 * n ** 3 / np.median(times) / 1e9


def side_by_side(ours, keras, repeats: int) -> tuple[list, list]:
  """Alternating timings (seconds) of two zero-argument callables."""
  ours(), keras()  # Warm-up: compilation, tf.function tracing, caches.
  times = ([], [])
  for _ in range(repeats):
    for fn, out in ((ours, times[0]), (keras, times[1])):
      t = time.perf_counter()
      fn()
      out.append(time.perf_counter() - t)
  return times


class OurTrainLoop:
  """`steps` real training-loop steps: a batch from the feed `main` would
  use for `pipeline` (gathered on the device, or streamed from the host),
  then the jitted `step_lib.train_step` (the same Runner `main` uses)."""

  def __init__(self, model, task, data, batch_size, steps, sample,
               pipeline="device"):
    self.runner = parallel.Runner(
        "jit", parallel.make_mesh(),
        functools.partial(step_lib.train_step, task=task),
        functools.partial(step_lib.eval_step, task=task))
    # Placed as `main` places it, so the first step does not recompile.
    self.state = jax.device_put(
        step_lib.create_train_state(jax.random.key(0), model, optax.adam(1e-3),
                                 sample), parallel.replicated(self.runner.mesh))
    self.feed = (feeds.DeviceFeed(self.runner, {"train": data})
                 if pipeline == "device" else
                 feeds.StreamFeed(self.runner, {"train": data}, 8, 16))
    n = len(jax.tree.leaves(data)[0])
    order = np.random.default_rng(0).permutation(n)[:steps * batch_size]
    self.table = parallel.put_replicated(
        order.reshape(steps, batch_size).astype(np.int32), self.runner.mesh)
    self.steps, self.rng = steps, jax.random.key(1)

  def __call__(self):
    for batch in self.feed.batches("train", self.table):
      self.state, _ = self.runner.train(self.state, batch, self.rng)
    jax.block_until_ready(self.state)

  def flops_per_step(self) -> float:
    batch = next(iter(self.feed.batches("train", self.table)))
    return _flops(self.runner.train.lower(self.state, batch, self.rng))


class InputOnly(OurTrainLoop):
  """The same feed's batches, on the devices, and no step."""

  def __call__(self):
    for batch in self.feed.batches("train", self.table):
      jax.block_until_ready(batch)

  def flops_per_step(self) -> float:
    return 0.0


class OurInference:
  """`steps` jitted forward passes (inference mode) over device batches."""

  def __init__(self, model, variables, batches):
    self.apply = jax.jit(lambda v, x: model.apply(v, x, train=False)[0])
    self.variables, self.batches = variables, batches
    self.steps = len(batches)

  def __call__(self):
    for batch in self.batches:
      out = self.apply(self.variables, batch)
    out.block_until_ready()

  def flops_per_step(self) -> float:
    return _flops(self.apply.lower(self.variables, self.batches[0]))


def _flops(lowered) -> float:
  """XLA's FLOP count of a lowered jitted call."""
  cost = lowered.compile().cost_analysis()
  return float((cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"])


def _images(n: int, size: int = 32) -> np.ndarray:
  return np.random.default_rng(0).random((n, size, size, 3), np.float32)


def _two_heads(batch_size: int, steps: int, dtype: str = "float32"):
  """The two-head core CNN (class + rotation heads), its task and data."""
  n = batch_size * steps
  rng = np.random.default_rng(1)
  labels, rots = rng.integers(0, 10, n), rng.integers(0, 4, n)
  data = {"image": _images(n), "label": labels.astype(np.int32),
          "class_mask": np.ones(n, np.float32),
          "views": {"rotation": pretext.Views(None, rots.astype(np.int32),
                                              None)},
          "view_masks": {"rotation": np.ones(n, np.float32)}}
  heads = {"class": HeadSpec(10), "rotation": HeadSpec(4)}
  cfg = rotation.get_config()
  model = get_model("multihead", {"heads": heads}, head_dropout_rate=0.3,
                    backbone_config={}, dtype=dtype)
  task = Task(inputs=lambda b, r, train: b["image"], loss=functools.partial(
      pretext_mix.loss, class_weight=1.0,
      pretexts={"rotation": mix.Pretext(rotation, cfg, rotation.spec(cfg))}))
  return model, task, data, (labels, rots)


def core_cnn(batch_size: int, steps: int, dtype: str = "float32"):
  """The two-head core CNN train step: class (10) + rotation (4) heads; in
  bfloat16, Keras under its `mixed_bfloat16` policy."""
  import keras  # pylint: disable=g-import-not-at-top
  model, task, data, targets = _two_heads(batch_size, steps, dtype)
  ours = OurTrainLoop(model, task, data, batch_size, steps, data["image"][:1])
  keras.mixed_precision.set_global_policy(
      "mixed_bfloat16" if dtype == "bfloat16" else "float32")
  try:
    km = keras_reference.core_cnn(heads=(10, 4))
  finally:
    keras.mixed_precision.set_global_policy("float32")
  km.compile(optimizer="adam", loss=[_keras_ce(), _keras_ce()])
  keras_fn = lambda: km.fit(data["image"], list(targets),
                            batch_size=batch_size, epochs=1, shuffle=False,
                            verbose=0)
  return ours, keras_fn, len(data["image"])


def streaming(batch_size: int, steps: int, step: bool):
  """The streaming path against the on-device path, both ours: the train
  step fed by each (`step`), or the input alone."""
  model, task, data, _ = _two_heads(batch_size, steps)
  make = OurTrainLoop if step else InputOnly
  loops = [make(model, task, data, batch_size, steps, data["image"][:1], p)
           for p in ("stream", "device")]
  return loops[0], loops[1], len(data["image"])


def _keras_ce(from_logits=True):
  import keras  # pylint: disable=g-import-not-at-top
  return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)


def memnet(batch_size: int, steps: int):
  """The `babi_memnn` train step on bAbI task 1's shapes."""
  vocab, story_len, query_len = 22, 68, 4
  n = batch_size * steps
  rng = np.random.default_rng(1)
  data = {"story": rng.integers(0, vocab, (n, story_len)).astype(np.int32),
          "query": rng.integers(0, vocab, (n, query_len)).astype(np.int32),
          "label": rng.integers(0, vocab, n).astype(np.int32),
          "mask": np.ones(n, np.float32)}
  model = get_model("memnet_keras", vocab_size=vocab, story_maxlen=story_len,
                    query_maxlen=query_len, dropout_rate=0.3)
  inputs = lambda b, r, train: {"story": b["story"], "query": b["query"]}
  sample = {k: data[k][:1] for k in ("story", "query")}
  ours = OurTrainLoop(model, Task(inputs, classification.loss), data,
                      batch_size, steps, sample)
  km, _ = keras_reference.memnet(vocab, story_len, query_len)
  km.compile(optimizer="adam", loss=_keras_ce(from_logits=False))
  keras = lambda: km.fit([data["story"], data["query"]], data["label"],
                         batch_size=batch_size, epochs=1, shuffle=False,
                         verbose=0)
  return ours, keras, n


def efficientnet_b0(batch_size: int, batches: int, size: int):
  """Inference, include_top, on `size` x `size` images."""
  import keras  # pylint: disable=g-import-not-at-top
  x = _images(batch_size * batches, size)
  model = get_model("efficientnet", variant="b0")
  variables = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(0), x[:1])
  ours = OurInference(model, variables,
                      [jnp.asarray(x[i * batch_size:(i + 1) * batch_size])
                       for i in range(batches)])
  km = keras.applications.EfficientNetB0(weights=None,
                                         input_shape=(size, size, 3))
  keras_fn = lambda: km.predict(x, batch_size=batch_size, verbose=0)
  return ours, keras_fn, len(x)


def rotation_epoch(images: np.ndarray, batch_size: int):
  """One epoch of rotation pretraining (one random rotation per image, the
  seeds' recipe), including building the rotated batches.

  Ours: images stay on the device; each jitted step gathers its batch and
  rotates it. The seeds': a NumPy loop rotating every image, then Keras fit.
  """
  n = len(images) // batch_size * batch_size
  images = images[:n]

  def expand(batch, rng, train):
    del train
    rotated, k = rotation.random_rotations(rng, batch["image"])
    return {"image": rotated, "rotation_label": k,
            "rotation_mask": jnp.ones(k.shape, jnp.float32)}

  def loss(outputs, batch, axis_name=None):
    total, metrics = losses.masked_cross_entropy(
        outputs[0]["rotation"], batch["rotation_label"],
        batch["rotation_mask"], axis_name)
    return total, {"loss": jnp.stack([total, 1.0]), **metrics}

  task = Task(inputs=lambda b, r, train: b["image"], loss=loss, expand=expand)
  model = get_model("multihead", {"heads": {"rotation": HeadSpec(4)}},
                    head_dropout_rate=0.3, backbone_config={})
  ours = OurTrainLoop(model, task, {"image": images}, batch_size,
                      n // batch_size, images[:1])

  km = keras_reference.core_cnn(heads=(4,))
  km.compile(optimizer="adam", loss=_keras_ce())
  rng = np.random.default_rng(0)

  def seeds():
    k = rng.integers(0, 4, n)
    rotated = np.stack([np.rot90(img, r) for img, r in zip(images, k)])
    km.fit(rotated, k, batch_size=batch_size, epochs=1, verbose=0)
  return ours, seeds, n


def _cifar_or_random(n: int) -> tuple[np.ndarray, str]:
  """CIFAR-10 training images scaled to [0, 1] if present, else noise."""
  from ssl_jax.data import image_datasets  # pylint: disable=g-import-not-at-top
  try:
    images = image_datasets.load("cifar10", source="files").train_images[:n]
    return images.astype(np.float32) / 255, "CIFAR-10 train"
  except (FileNotFoundError, ValueError):
    return _images(n), "random images"


def workloads(quick: bool) -> dict:
  """name -> (builder, target name, description)."""
  steps = 2 if quick else 40
  unlabeled, source = _cifar_or_random(256 if quick else 49_800)
  b0_batch, b0_size = (2, 64) if quick else (32, 224)
  return {
      "core_cnn_b128": (lambda: core_cnn(128, steps // 2 or 1), "core_cnn",
                        "two-head core CNN train step, 32x32x3, batch 128"),
      "core_cnn_b32": (lambda: core_cnn(32, steps * 2), "core_cnn",
                       "two-head core CNN train step, 32x32x3, batch 32"),
      "core_cnn_b128_bf16": (
          lambda: core_cnn(128, steps // 2 or 1, "bfloat16"), None,
          "the same, batch 128, bfloat16 (Keras: mixed_bfloat16)"),
      "stream_input": (
          lambda: streaming(128, steps, step=False), None,
          "streaming input alone, batches of 128 to the devices "
          "(vs: the on-device gather)", "device path"),
      "stream_step": (
          lambda: streaming(128, steps, step=True), "stream_step",
          "two-head core CNN train step, batch 128, fed by the streaming "
          "path (vs: the on-device path)", "device path"),
      "memnet": (lambda: memnet(32, steps * 5), "memnet",
                 "memnet_keras train step, bAbI task 1 shapes, batch 32"),
      "efficientnet_b0": (
          lambda: efficientnet_b0(b0_batch, 1 if quick else 3, b0_size),
          "efficientnet_b0",
          f"EfficientNet-B0 inference, {b0_size}x{b0_size}, batch {b0_batch}"),
      "rotation_epoch": (
          lambda: rotation_epoch(unlabeled, _ROTATION_BATCH.value),
          "rotation_epoch",
          f"rotation pretraining epoch incl. batch building, "
          f"{len(unlabeled):,} {source}, batch {_ROTATION_BATCH.value} "
          "(Keras: NumPy rot90 loop + fit)"),
  }


def main(_):
  out = pathlib.Path(_OUT.value)
  out.mkdir(parents=True, exist_ok=True)
  info = {**machine(), "matmul_gflops": round(matmul_gflops(), 1)}
  print(json.dumps(info, indent=1), flush=True)
  rows = []
  for name, (build, target, what, *versus) in workloads(
      _QUICK.value).items():
    if _ONLY.value and name not in _ONLY.value:
      continue
    ours, reference, examples = build()
    t_ours, t_ref = side_by_side(ours, reference, _REPEATS.value)
    ours_rate = examples / np.median(t_ours)
    ref_rate = examples / np.median(t_ref)
    flops = ours.flops_per_step() * ours.steps / np.median(t_ours) / 1e9
    rows.append({"workload": name, "what": what,
                 "versus": versus[0] if versus else "Keras",
                 "ours_examples_per_s": round(ours_rate, 1),
                 "reference_examples_per_s": round(ref_rate, 1),
                 "ratio": round(ours_rate / ref_rate, 2),
                 "target": TARGETS[target],
                 "ours_gflops": round(flops, 1),
                 "ours_s": [round(t, 4) for t in t_ours],
                 "reference_s": [round(t, 4) for t in t_ref]})
    print(json.dumps(rows[-1]), flush=True)
  (out / "bench.json").write_text(json.dumps({"machine": info, "rows": rows},
                                             indent=1))
  lines = [f"Machine: {info['cpu']}, {info['cores']} cores; jax "
           f"{info['jax']}, tensorflow {info['tensorflow']}; XLA float32 "
           f"matmul {info['matmul_gflops']} GFLOP/s. Medians of "
           f"{_REPEATS.value} alternating repeats.", "",
           "| workload | ours (ex/s) | reference (ex/s) | ratio | target | "
           "ours GFLOP/s |", "| --- | --- | --- | --- | --- | --- |"]
  lines += [f"| {r['what']} | {r['ours_examples_per_s']:,.0f} | "
            f"{r['reference_examples_per_s']:,.0f} ({r['versus']}) | "
            f"**{r['ratio']:.2f}x** | "
            f"{'-' if r['target'] is None else '>= %gx' % r['target']} | "
            f"{r['ours_gflops']} |" for r in rows]
  (out / "bench.md").write_text("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  app.run(main)
