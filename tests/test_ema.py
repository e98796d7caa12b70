"""config.ema_decay: an EMA of the parameters and BatchNorm statistics,
evaluated next to the raw weights, checkpointed, exact on resume."""
import functools

import jax
import numpy as np
import optax
import pytest

from ssl_jax.models import get_model
from ssl_jax.tasks import classification
from ssl_jax.train import loop
from ssl_jax.train import step as step_lib

import helpers


def test_ema_after_k_steps_is_the_closed_form_average():
  config = helpers.load_config()
  task = classification.make(config, np.full(3, 0.5), np.full(3, 0.25))
  model = get_model("core_cnn", num_classes=10, features=(4, 8, 8), dense=16)
  rng = np.random.default_rng(0)
  data = {"image": rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8),
          "label": rng.integers(0, 10, 16).astype(np.int32)}
  state = step_lib.create_train_state(
      jax.random.key(1), model, optax.sgd(0.1),
      task.inputs(jax.tree.map(lambda a: a[:1], data), None, False), ema=True)
  decay, k = 0.8, 4
  step = jax.jit(functools.partial(step_lib.train_step, task=task,
                                   ema_decay=decay))
  weights = [{"params": state.params, "batch_stats": state.batch_stats}]
  for _ in range(k):
    state, _ = step(state, data, jax.random.key(2))
    weights.append({"params": state.params, "batch_stats": state.batch_stats})
  # ema_k = d^k w_0 + (1 - d) sum_i d^(k - i) w_i.
  want = jax.tree.map(
      lambda *w: decay ** k * np.asarray(w[0]) + (1 - decay) * sum(
          decay ** (k - i) * np.asarray(w[i]) for i in range(1, k + 1)),
      *weights)
  helpers.assert_trees_close(state.ema, want, atol=1e-6)
  assert not np.allclose(state.ema["params"]["conv1"]["kernel"],
                         state.params["conv1"]["kernel"])


def test_ema_is_evaluated_saved_and_resumed_exactly(tmp_path):
  # A constant learning rate: the 2-epoch run is the 3-epoch run's start.
  fields = {"ema_decay": 0.9, "optimizer.schedule": "constant"}
  config = helpers.tiny_config(**fields)
  straight = loop.train_and_evaluate(config, str(tmp_path / "straight"))
  cut = helpers.tiny_config(num_epochs=2, **fields)
  loop.train_and_evaluate(cut, str(tmp_path / "cut"))
  resumed = loop.train_and_evaluate(config, str(tmp_path / "cut"))
  assert helpers.untimed(resumed) == helpers.untimed(straight)
  a, b = (helpers.read_checkpoint(tmp_path / d)["state"]["ema"]
          for d in ("straight", "cut"))
  jax.tree.map(np.testing.assert_array_equal, a, b)  # Bitwise.
  assert {"ema_test_accuracy", "ema_test_loss"} <= set(straight)
  assert straight["ema_test_loss"] != straight["test_loss"]


def test_ema_of_decay_near_zero_scores_as_the_raw_weights(tmp_path):
  last = loop.train_and_evaluate(
      helpers.tiny_config(ema_decay=1e-12, num_epochs=1), str(tmp_path))
  assert last["ema_test_accuracy"] == last["test_accuracy"]
  assert last["ema_test_loss"] == pytest.approx(last["test_loss"], rel=1e-6)
