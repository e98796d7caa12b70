"""One command on a GPU (or TPU) machine: do our steps run there, match the
CPU, and how fast are they?

  python experiments/gpu_check.py [--out=runs/gpu_check] [--steps=3]

Needs only jax (any CUDA build, 0.10 or 0.11), flax, optax and orbax; no
network. It prints the devices and which optional packages are missing
(bring their wheels: `pip download ml-collections absl-py` elsewhere, then
`pip install --no-deps *.whl`; tensorflow-datasets and tensorboardX only for
TFDS data and TensorBoard files), then:
  1. the jitted step over a mesh of all devices and the pmap step, a few
     steps of the core CNN from one initialisation, against the same steps
     on the CPU (a subprocess with JAX_PLATFORMS=cpu): max parameter
     difference and pass/fail at --tolerance;
  2. the seeds' core CNN train step (batch 128, float32 and bfloat16):
     examples/s on the accelerator next to the CPU's;
  3. with ml_collections present, a short (B) run (`configs/pretrain.py:quick`
     then `configs/finetune.py:quick`) through `python -m ssl_jax.main`.
Writes gpu_check.json to --out. The result is meaningful on one machine only.
"""
import functools
import json
import os
import pathlib
import subprocess
import sys
import time

from absl import app
from absl import flags

_OUT = flags.DEFINE_string("out", "runs/gpu_check", "Where results go.")
_STEPS = flags.DEFINE_integer("steps", 3, "Train steps compared with the CPU.")
_TOLERANCE = flags.DEFINE_float("tolerance", 2e-3, "Max |param difference|.")
_REFERENCE = flags.DEFINE_string("reference", "", "Internal: write the CPU "
                                 "reference to this .npz and exit.")
ROOT = pathlib.Path(__file__).resolve().parents[1]
OPTIONAL = ("ml_collections", "tensorflow_datasets", "tensorboardX")


def _setup(axis_name=None, features=(8, 16, 16), dense=32, batch=32,
           dtype="float32"):
  """A core CNN train state and a batch from fixed seeds (no dataset)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from ssl_jax.train import step as step_lib  # pylint: disable=g-import-not-at-top
  from ssl_jax.models import get_model  # pylint: disable=g-import-not-at-top
  from ssl_jax.tasks import classification  # pylint: disable=g-import-not-at-top
  from ssl_jax.tasks import Task  # pylint: disable=g-import-not-at-top
  task = Task(functools.partial(
      classification.image_inputs, mean=np.full(3, 0.5), std=np.full(3, 0.25),
      crop_padding=0, flip=False, image_size=0), classification.loss)
  model = get_model("core_cnn", num_classes=10, features=features,
                    dense=dense, dropout_rate=0.0, axis_name=axis_name,
                    dtype=dtype)
  rng = np.random.default_rng(0)
  data = {"image": rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8),
          "label": rng.integers(0, 10, (batch,)).astype(np.int32)}
  state = step_lib.create_train_state(
      jax.random.key(1), model, optax.sgd(0.05),
      task.inputs(jax.tree.map(lambda a: a[:1], data), None, False))
  return task, state, data


def _run_steps(mode: str, steps: int):
  """`steps` steps of the `mode` ('jit' or 'pmap') runner over all devices."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from ssl_jax.train import parallel  # pylint: disable=g-import-not-at-top
  from ssl_jax.train import step as step_lib  # pylint: disable=g-import-not-at-top
  task, state, data = _setup(axis_name="data" if mode == "pmap" else None)
  runner = parallel.Runner(mode, parallel.make_mesh(),
                           functools.partial(step_lib.train_step, task=task),
                           functools.partial(step_lib.eval_step, task=task))
  table = parallel.put_replicated(
      np.arange(len(data["label"]), dtype=np.int32)[None], runner.mesh)
  data = parallel.put_replicated(data, runner.mesh)
  state = runner.to_device_layout(state)
  for _ in range(steps):
    state, _ = runner.train(state, runner.take(data, table, 0),
                            jax.random.key(7))
  return jax.device_get(runner.from_device_layout(state).params)


def _speed(dtype: str, repeats: int = 20) -> float:
  """Examples/s of the seeds' core CNN train step at batch 128."""
  import jax  # pylint: disable=g-import-not-at-top
  from ssl_jax.train import step as step_lib  # pylint: disable=g-import-not-at-top
  task, state, data = _setup(features=(32, 64, 128), dense=1024, batch=128,
                             dtype=dtype)
  step = jax.jit(functools.partial(step_lib.train_step, task=task))
  data = jax.device_put(data)
  key = jax.random.key(0)
  state, m = step(state, data, key)  # Compile.
  jax.block_until_ready(m)
  start = time.perf_counter()
  for _ in range(repeats):
    state, m = step(state, data, key)
  jax.block_until_ready(m)
  return repeats * 128 / (time.perf_counter() - start)


def _flat(tree) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  return {jax.tree_util.keystr(p): x
          for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def main(_):
  import numpy as np  # pylint: disable=g-import-not-at-top
  if _REFERENCE.value:  # The CPU side, in its own process.
    np.savez(_REFERENCE.value, **_flat(_run_steps("jit", _STEPS.value)),
             speed_float32=_speed("float32"))
    return
  import jax  # pylint: disable=g-import-not-at-top
  out = pathlib.Path(_OUT.value)
  out.mkdir(parents=True, exist_ok=True)
  missing = []
  for name in OPTIONAL:
    try:
      __import__(name)
    except ImportError:
      missing.append(name)
  result = {"jax": jax.__version__, "python": sys.version.split()[0],
            "backend": jax.default_backend(),
            "devices": [str(d) for d in jax.devices()], "missing": missing}
  print(json.dumps(result, indent=1))
  reference = out / "cpu_reference.npz"
  subprocess.run([sys.executable, __file__, f"--reference={reference}",
                  f"--steps={_STEPS.value}"], check=True, cwd=ROOT,
                 env={**os.environ, "JAX_PLATFORMS": "cpu"})
  with np.load(reference) as cpu:
    cpu = dict(cpu)
  for mode in ("jit", "pmap"):
    got = _flat(_run_steps(mode, _STEPS.value))
    diff = max(float(np.max(np.abs(got[k] - cpu[k]))) for k in got)
    result[f"{mode}_max_param_diff_vs_cpu"] = diff
    result[f"{mode}_matches_cpu"] = diff <= _TOLERANCE.value
  for dtype in ("float32", "bfloat16"):
    result[f"core_cnn_b128_{dtype}_examples_per_s"] = round(_speed(dtype))
  result["cpu_core_cnn_b128_float32_examples_per_s"] = round(
      float(cpu["speed_float32"]))
  if "ml_collections" not in missing:
    for config in ("pretrain.py:quick", "finetune.py:quick"):
      workdir = out / config.split(".")[0]
      extra = ([f"--config.init_from={out / 'pretrain'}"]
               if config.startswith("finetune") else [])
      run = subprocess.run(
          [sys.executable, "-m", "ssl_jax.main", f"--config=configs/{config}",
           f"--workdir={workdir}", *extra], cwd=ROOT, capture_output=True,
          text=True)
      result[f"run_{config}"] = "ok" if run.returncode == 0 else (
          run.stderr[-2000:])
  (out / "gpu_check.json").write_text(json.dumps(result, indent=1))
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  sys.path.insert(0, str(ROOT))
  app.run(main)
