"""Shared test utilities: configs, a tiny model, subprocess runs of main."""
import json
import os
import pathlib
import re
import socket
import subprocess

import jax
import numpy as np

from ssl_jax.train import parallel

ROOT = pathlib.Path(__file__).resolve().parents[1]
CIFAR_DIR = ROOT.parent / "shared" / "data" / "cifar10"


def load_config(name: str = "supervised", arg: str = "quick"):
  from ssl_jax import config_files  # pylint: disable=g-import-not-at-top
  return config_files.load(ROOT / "configs" / f"{name}.py", arg)


# A few-thousand-parameter core CNN and a short run: fast enough for tests.
# A constant learning rate: a schedule's length is a constant of the compiled
# step, so runs of any length then share one compilation (the suite's cache).
TINY = {"model.features": (8, 16, 16), "model.dense": 32,
        "input.labels_per_class": 5, "input.max_test_examples": 200,
        "input.eval_batch_size": 100, "input.batch_size": 16,
        "steps_per_epoch": 4, "num_epochs": 3, "log_every_steps": 2,
        "optimizer.schedule": "constant"}


# The same tiny network as the backbone of the multi-head configs.
TINY_MULTIHEAD = {
    **{k: v for k, v in TINY.items() if not k.startswith("model.")},
    "model.backbone_config.features": (8, 16, 16),
    "model.backbone_config.dense": 32, "input.unlabeled_batch_size": 16}


def tiny_config(name="supervised", arg="quick", **overrides):
  config = load_config(name, arg)
  tiny = TINY if name == "supervised" else TINY_MULTIHEAD
  for key, value in {**tiny, **overrides}.items():
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def main_command(workdir, overrides: dict, config="configs/supervised.py:quick"):
  from lib import experiment  # pylint: disable=g-import-not-at-top
  return experiment.main_command(config, workdir, overrides)


def cpu_devices(n: int) -> dict:
  """Environment for a subprocess with `n` CPU devices and the suite's other
  XLA flags (tests/conftest.py)."""
  flags = re.sub(r"--xla_force_host_platform_device_count=\d+\s*", "",
                 os.environ.get("XLA_FLAGS", ""))
  return {**os.environ, "XLA_FLAGS":
          f"--xla_force_host_platform_device_count={n} {flags}".strip()}


def run_main(workdir, overrides: dict, env=None, **kwargs):
  """main in a subprocess; on one CPU device unless `env` says otherwise
  (as on a laptop, and its programs compile faster than 4 devices')."""
  return subprocess.run(main_command(workdir, overrides), cwd=ROOT,
                        env={**cpu_devices(1), **(env or {})},
                        capture_output=True, text=True,
                        **kwargs)


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start_processes(workdir, overrides: dict, config=None, env=None,
                    flags=()) -> list[subprocess.Popen]:
  """Two processes of one jax.distributed run of main (loopback), on one CPU
  device each; stderr piped."""
  coordinator = f"127.0.0.1:{free_port()}"
  command = (main_command(workdir, overrides) if config is None
             else main_command(workdir, overrides, config))
  return [subprocess.Popen(
      command + [f"--coordinator_address={coordinator}", "--num_processes=2",
                 f"--process_id={i}", *flags],
      cwd=ROOT, env=env or cpu_devices(1), stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE, text=True) for i in range(2)]


def finish_processes(procs) -> list[str]:
  """Waits for `procs` (killed if the wait is cut short); each must exit 0.
  Returns their logs."""
  try:
    errs = [p.communicate()[1] for p in procs]
  finally:
    for p in procs:
      p.kill()
  for p, err in zip(procs, errs):
    assert p.returncode == 0, err[-3000:]
  assert "JAX process 1/2" in errs[1]
  return errs


def read_records(workdir) -> list[dict]:
  """A run's metrics.jsonl records, in order."""
  path = pathlib.Path(workdir) / "metrics.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines()]


def untimed(record: dict) -> dict:
  """A metrics record without its wall time, which no two runs share."""
  return {k: v for k, v in record.items() if k != "wall_time_s"}


def read_checkpoint(workdir, step=None):
  from ssl_jax.train import checkpoints  # pylint: disable=g-import-not-at-top
  return checkpoints.read(pathlib.Path(workdir) / "checkpoints", step)


def run_steps(runner, state, data, steps=3):
  """`steps` train steps of `runner` on the whole of `data` (host arrays)."""
  table = parallel.put_replicated(
      np.arange(len(data["label"]), dtype=np.int32)[None], runner.mesh)
  data = parallel.put_replicated(data, runner.mesh)
  state = runner.to_device_layout(state)
  for _ in range(steps):
    state, metrics = runner.train(state, runner.take(data, table, 0),
                                  jax.random.key(7))
  return runner.from_device_layout(state), runner.from_device_layout(metrics)


def assert_trees_close(a, b, atol=1e-5):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(
      np.asarray(x), np.asarray(y), atol=atol, rtol=1e-5), a, b)
