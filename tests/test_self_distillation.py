"""BYOL and DINO as plug-ins with a momentum teacher: their losses and
DINO's centre against NumPy, the teacher against the closed form of the
student's history, no gradient into the teacher, and a run killed with
SIGKILL resumed bit-identically, teacher state included."""
import signal
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssl_jax import models
from ssl_jax import pretext
from ssl_jax.pretext import byol
from ssl_jax.pretext import dino
from ssl_jax.tasks import pretext_mix
from ssl_jax.train import loop
from ssl_jax.train import step as step_lib

import helpers


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_byol_loss_against_numpy():
  rng = np.random.default_rng(0)
  b, d = 5, 8
  q, proj, z = (rng.normal(size=(2 * b, d)).astype(np.float32)
                for _ in range(3))
  valid = np.array([1, 1, 0, 1, 1], np.float32)
  value, metrics = byol.loss(
      byol.get_config(), {"prediction": q, "projection": proj}, None,
      np.tile(valid, 2), state=None,
      teacher_outputs={"projection": z, "prediction": proj})
  qn, zn = _unit(q.astype(np.float64)), _unit(z.astype(np.float64))
  # ||q1 - z2'||^2 + ||q2 - z1'||^2 of each image, unit vectors.
  per_image = (np.sum((qn[:b] - zn[b:]) ** 2, -1) +
               np.sum((qn[b:] - zn[:b]) ** 2, -1))
  expected = np.sum(per_image * valid) / valid.sum()
  np.testing.assert_allclose(value, expected, rtol=1e-5)
  np.testing.assert_allclose(metrics["loss"],
                             [np.sum(per_image * valid), valid.sum()],
                             rtol=1e-5)
  # The collapse monitor: std over valid rows of the unit projections.
  keep = np.tile(valid, 2) > 0
  spread = np.mean(np.std(_unit(proj[keep].astype(np.float64)), 0)) * (
      np.sqrt(d))
  np.testing.assert_allclose(metrics["projection_std"], [spread, 1.0],
                             rtol=1e-5)


def test_dino_loss_against_numpy():
  rng = np.random.default_rng(1)
  b, k, local = 4, 6, 3
  cfg = dino.get_config()
  cfg.update(prototypes=k, local_crops=local)
  student = rng.normal(size=((2 + local) * b, k)).astype(np.float32)
  teacher = rng.normal(size=(2 * b, k)).astype(np.float32)
  center = rng.normal(size=(k,)).astype(np.float32) * 0.1
  valid = np.array([1, 0, 1, 1], np.float32)
  value, metrics = dino.loss(cfg, student, None, np.tile(valid, 2 + local),
                             state={"center": center},
                             teacher_outputs=teacher)
  t = np.exp(_log_softmax((teacher.astype(np.float64) - center) /
                          cfg.teacher_temperature))
  log_s = _log_softmax(student.astype(np.float64) / cfg.student_temperature)
  total, terms = 0.0, 0
  for i in range(b):
    if not valid[i]:
      continue
    for g in range(2):
      for v in range(2 + local):
        if v != g:
          total += -np.sum(t[g * b + i] * log_s[v * b + i])
  terms = 2 * (2 + local) - 2
  expected = total / terms / valid.sum()
  np.testing.assert_allclose(value, expected, rtol=1e-5)
  entropy = -np.sum(t * np.log(t), -1)
  np.testing.assert_allclose(
      metrics["teacher_entropy"],
      [np.sum(entropy * np.tile(valid, 2)), 2 * valid.sum()], rtol=1e-5)


def test_dino_centre_and_teacher_follow_their_formulas():
  cfg = dino.get_config()
  cfg.prototypes = 5
  rng = np.random.default_rng(2)
  student = {"params": {"w": rng.normal(size=(3,)).astype(np.float32)}}
  state = dino.init_state(cfg, {"params": {"w": np.zeros(3, np.float32)}})
  state["center"] = rng.normal(size=(5,)).astype(np.float32)
  t = rng.normal(size=(8, 5)).astype(np.float32)
  new = dino.update_state(cfg, state, pretext.Update(
      student, jnp.float32(0.5), t))
  # Momentum at half the run: 1 - (1 - base) (cos(pi / 2) + 1) / 2.
  m = 1 - (1 - cfg.momentum) / 2
  # 1 - m = 0.002 in float32: ~3e-5 relative.
  np.testing.assert_allclose(new["teacher"]["params"]["w"],
                             (1 - m) * student["params"]["w"], rtol=1e-4)
  np.testing.assert_allclose(
      new["center"], cfg.center_momentum * state["center"] +
      (1 - cfg.center_momentum) * t.mean(0), rtol=1e-5)


PLUGIN_RUN = {"input.name": "lab_plugins.blobs",
              "input.labels_per_class": 5, "input.batch_size": 8,
              "input.unlabeled_batch_size": 8, "input.eval_batch_size": 16,
              "input.max_test_examples": 0, "knn.k": 0,
              "model.head_dropout_rate": 0.0, "num_epochs": 2,
              "steps_per_epoch": 2, "checkpoint_every_steps": 1,
              "keep_checkpoints": 10, "optimizer.schedule": "constant",
              "pretext.byol.hidden": 16, "pretext.byol.dim": 8}


def _byol_config(data_dir):
  config = helpers.load_config(
      "multitask", "quick,pretext=byol,backbone=lab_plugins.tiny_net")
  for key, value in {**PLUGIN_RUN, "input.data_dir": str(data_dir)}.items():
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def test_byol_teacher_is_the_cosine_moving_average(data_dir, tmp_path):
  """teacher_k = m_k teacher_(k-1) + (1 - m_k) student_k, teacher_0 =
  student_0, m_k = 1 - (1 - base)(cos(pi k / K) + 1) / 2, from the saved
  history of the student's parameters and statistics."""
  config = _byol_config(data_dir)
  _, fresh = loop.build(config, tmp_path / "fresh")
  loop.train_and_evaluate(config, tmp_path / "run")
  own = lambda s: {"params": {k: s["params"][k] for k in ("backbone",
                                                          "byol_head")},
                   "batch_stats": {k: s["batch_stats"][k] for k in (
                       "backbone", "byol_head")}}
  teacher = jax.device_get(own({"params": fresh.params,
                                "batch_stats": fresh.batch_stats}))
  for k in range(1, 5):
    m = 1 - (1 - config.pretext.byol.momentum) * (np.cos(np.pi * k / 4) +
                                                    1) / 2
    student = own(helpers.read_checkpoint(tmp_path / "run", k)["state"])
    teacher = jax.tree.map(lambda t, s, m=m: m * t + (1 - m) * s, teacher,
                           student)
  state = helpers.read_checkpoint(tmp_path / "run", 4)["state"]
  helpers.assert_trees_close(state["method_state"]["byol"]["teacher"],
                             teacher, atol=1e-6)
  assert set(state["params"]) == {"backbone", "class_head", "byol_head"}


SMALL = {"byol": {"hidden": 16, "dim": 8},
         "dino": {"hidden": 16, "bottleneck": 8, "prototypes": 12,
                  "local_crops": 2, "local_size": 32}}


@pytest.mark.parametrize("name", ["byol", "dino"])
def test_the_teacher_gets_no_gradient(name):
  """The task's loss, with the teacher pass inside it, has zero gradient
  with respect to the teacher, though it depends on the teacher."""
  config = helpers.load_config("multitask", f"quick,pretext={name}")
  config.pretext[name].update(SMALL[name])
  task, heads = pretext_mix.make(config, np.zeros(3), np.ones(3), 10, 4)
  model = models.get_model("multihead", {"heads": heads}, backbone_config={
      "features": (8, 16, 16), "dense": 32})
  rng = np.random.default_rng(0)
  data = {"image": rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8),
          "label": np.arange(8, dtype=np.int32) % 10}
  batch, x = jax.jit(lambda d: (lambda b: (b, task.inputs(
      b, jax.random.key(4), True)))(task.expand(d, jax.random.key(3), True)))(
          data)
  state = step_lib.create_train_state(
      jax.random.key(1), model, optax.sgd(0.1), x, init_state=task.init_state)
  variables = {"params": state.params, "batch_stats": state.batch_stats}

  @jax.jit
  def loss(method_state):
    teacher = task.teacher(state.apply_fn, method_state, x, jax.random.key(5),
                           True)
    outputs, _ = state.apply_fn(variables, x, train=True,
                                rngs={"dropout": jax.random.key(6)},
                                mutable=["batch_stats"])
    return task.loss(outputs, {**batch, "teacher": teacher}, None,
                     method_state)[0]

  grads = jax.grad(loss)(state.method_state)
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(grads))
  moved = jax.tree.map(lambda a: a * 0.5, state.method_state)
  assert abs(float(loss(moved)) - float(loss(state.method_state))) > 1e-4


DINO_CONFIG = ("configs/multitask.py:quick,pretext=dino,"
               "backbone=lab_plugins.tiny_net")


def _dino_overrides(data_dir, **more):
  """DINO with multi-crop (2 local views at 8 of 16 pixels) on the blobs."""
  return {**{k: v for k, v in PLUGIN_RUN.items()
             if not k.startswith("pretext.byol")},
          "input.data_dir": str(data_dir), "pretext.dino.hidden": 16,
          "pretext.dino.bottleneck": 8, "pretext.dino.prototypes": 12,
          "pretext.dino.local_crops": 2, "pretext.dino.local_size": 8,
          "num_epochs": 3, **more}


def _env(devices=1):
  """tests/ on PYTHONPATH, for the lab plug-ins."""
  return {**helpers.cpu_devices(devices),
          "PYTHONPATH": str(helpers.ROOT / "tests")}


@pytest.fixture(scope="module")
def dino_straight(data_dir, tmp_path_factory):
  """An uninterrupted DINO run in one process with two devices."""
  workdir = tmp_path_factory.mktemp("dino_straight")
  subprocess.run(helpers.main_command(workdir, _dino_overrides(data_dir),
                                      DINO_CONFIG),
                 cwd=helpers.ROOT, env=_env(2), check=True,
                 capture_output=True, timeout=300)
  return workdir


def test_dino_killed_and_resumed_equals_uninterrupted(data_dir, dino_straight,
                                                      tmp_path):
  """SIGKILL mid-run, then the same command: the end state (parameters,
  teacher, centre) and records equal a run that was never stopped."""
  command = helpers.main_command(tmp_path, _dino_overrides(data_dir),
                                 DINO_CONFIG)
  proc = subprocess.Popen(command, cwd=helpers.ROOT, env=_env(2),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while proc.poll() is None and time.time() < deadline:
    ckpts = tmp_path / "checkpoints"
    if ckpts.exists() and any(p.name.isdigit() and int(p.name) >= 2
                              for p in ckpts.iterdir()):
      proc.send_signal(signal.SIGKILL)
      break
    time.sleep(0.02)
  assert proc.wait(timeout=60) == -signal.SIGKILL
  subprocess.run(command, cwd=helpers.ROOT, env=_env(2), check=True,
                 capture_output=True, timeout=300)
  a = helpers.read_checkpoint(dino_straight)["state"]
  b = helpers.read_checkpoint(tmp_path)["state"]
  assert int(a["step"]) == int(b["step"]) == 6
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert ([helpers.untimed(r) for r in helpers.read_records(dino_straight)] ==
          [helpers.untimed(r) for r in helpers.read_records(tmp_path)])
  assert np.abs(a["method_state"]["dino"]["center"]).max() > 0


def test_dino_on_two_hosts_equals_one_process(data_dir, dino_straight,
                                              tmp_path):
  """Two jax.distributed processes (loopback, one device each, streaming
  their halves of each batch) end where one process with two devices does:
  parameters, teacher and centre."""
  helpers.finish_processes(helpers.start_processes(
      tmp_path, {**_dino_overrides(data_dir), "input.pipeline": "stream"},
      DINO_CONFIG, env=_env()))
  a = helpers.read_checkpoint(dino_straight)["state"]
  b = helpers.read_checkpoint(tmp_path)["state"]
  helpers.assert_trees_close(b["params"], a["params"])
  helpers.assert_trees_close(b["method_state"], a["method_state"])


def test_the_lightly_config_builds_the_cifar_resnet18():
  """11,168,832 parameters: torchvision's resnet18 (11,689,512) less its
  1000-class layer (513,000) and 7x7 stem (9,408), plus a 3x3 stem (1,728);
  a 32x32 image leaves a 4x4x512 map, pooled to 512 features."""
  config = helpers.load_config("pretrain", "pretext=byol,lightly")
  net = models.get_model(config.model.backbone, None, num_classes=0,
                         **config.model.backbone_config)
  shapes = jax.eval_shape(lambda: net.init(
      jax.random.key(0), jnp.zeros((2, 32, 32, 3)), train=False))
  assert sum(np.prod(a.shape) for a in jax.tree.leaves(
      shapes["params"])) == 11_168_832
  out, inter = jax.eval_shape(lambda v: net.apply(
      v, jnp.zeros((2, 32, 32, 3)), train=False), shapes)
  assert out.shape == (2, 512) and inter["block4"].shape == (2, 4, 4, 512)
  assert (config.optimizer.name, config.num_epochs, config.knn.k,
          config.input.batch_size + config.input.unlabeled_batch_size) == (
              "momentum", 200, 200, 128)
