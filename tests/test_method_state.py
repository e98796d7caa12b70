"""Methods that keep state across steps or read the class head, as plug-ins
(tests/lab_plugins): the state against its closed form, in the checkpoint,
resumed exactly; the class head shared, the agreement loss against NumPy."""
import jax
import numpy as np
import pytest

from ssl_jax.train import loop

import helpers
from lab_plugins import flip_agreement

PRETEXTS = "lab_plugins.momentum_teacher+lab_plugins.flip_agreement"


def _config(data_dir, **overrides):
  config = helpers.load_config(
      "multitask", f"quick,pretext={PRETEXTS},backbone=lab_plugins.tiny_net")
  settings = {"input.name": "lab_plugins.blobs",
              "input.data_dir": str(data_dir), "input.labels_per_class": 5,
              "input.batch_size": 8, "input.unlabeled_batch_size": 8,
              "input.eval_batch_size": 16, "input.max_test_examples": 0,
              "knn.k": 0, "model.head_dropout_rate": 0.0,
              "num_epochs": 2, "steps_per_epoch": 2,
              "checkpoint_every_steps": 1, "keep_checkpoints": 10,
              "optimizer.schedule": "constant", **overrides}
  for key, value in settings.items():
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


@pytest.fixture(scope="module")
def straight(tmp_path_factory, data_dir):
  workdir = tmp_path_factory.mktemp("straight")
  loop.train_and_evaluate(_config(data_dir), workdir)
  return workdir


def test_teacher_is_the_moving_average_of_the_backbone(straight, data_dir,
                                                       tmp_path):
  """teacher_k = m^k p_0 + sum_i (1 - m) m^(k-i) p_i over the saved steps."""
  _, fresh = loop.build(_config(data_dir), tmp_path)
  history = [jax.device_get(fresh.params["backbone"])] + [
      helpers.read_checkpoint(straight, step)["state"]["params"]["backbone"]
      for step in range(1, 5)]
  m = 0.9
  expected = jax.tree.map(lambda *p: m ** 4 * p[0] + sum(
      (1 - m) * m ** (4 - i) * p[i] for i in range(1, 5)), *history)
  state = helpers.read_checkpoint(straight, 4)["state"]
  helpers.assert_trees_close(state["method_state"]["momentum_teacher"]
                             ["teacher"], expected, atol=1e-6)
  # The teacher got no gradient step: it is not among the parameters.
  assert set(state["params"]) == {"backbone", "class_head",
                                  "momentum_teacher_head"}


def test_resume_continues_the_state_exactly(straight, data_dir, tmp_path):
  loop.train_and_evaluate(_config(data_dir, num_epochs=1), tmp_path)
  loop.train_and_evaluate(_config(data_dir), tmp_path)
  a = helpers.read_checkpoint(straight, 4)["state"]
  b = helpers.read_checkpoint(tmp_path, 4)["state"]
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_the_agreement_method_reads_the_class_head(straight):
  """Its rows go through the class head: it has no head of its own."""
  params = helpers.read_checkpoint(straight)["state"]["params"]
  assert "flip_agreement_head" not in params
  records = (straight / "metrics.jsonl").read_text().splitlines()
  assert '"train_flip_agreement_loss"' in records[-1]
  assert '"test_momentum_teacher_teacher_norm"' in records[-1]


def test_agreement_loss_against_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(12, 4)).astype(np.float32) * 3
  mask = np.array([1, 1, 1, 1, 1, 0], np.float32)
  weak, strong = logits[:6], logits[6:]
  p = np.exp(weak - weak.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  cfg = flip_agreement.get_config()
  cfg.threshold = float(np.sort(p.max(-1)[:5])[2])  # 3 of the 5 confident.
  loss, metrics = flip_agreement.loss(cfg, logits, None,
                                      np.concatenate([mask, mask]))
  keep = (p.max(-1) >= cfg.threshold) * mask
  assert keep.sum() == 3
  log_q = strong - strong.max(-1, keepdims=True)
  log_q -= np.log(np.exp(log_q).sum(-1, keepdims=True))
  ce = -log_q[np.arange(6), p.argmax(-1)]
  np.testing.assert_allclose(loss, (ce * keep).sum() / keep.sum(), rtol=1e-5)
  np.testing.assert_allclose(metrics["loss"], [(ce * keep).sum(), keep.sum()],
                             rtol=1e-5)
