"""cache_features (ssl_jax/evals/frozen_features.py): the frozen backbone's features
computed once, a head trained on them, the run saved as a normal one."""
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssl_jax import models
from ssl_jax.evals import frozen_features
from ssl_jax.train import loop
from ssl_jax.train import reporting

import helpers

# ImageNet statistics, as configs/efficientnet_transfer.py standardises.
_MEAN, _STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def _config(**overrides):
  """The cached transfer config with a tiny core CNN for its backbone."""
  config = helpers.load_config("efficientnet_transfer", "quick,cached")
  config.model.backbone = "core_cnn"
  config.model.backbone_config = {"features": (8, 16), "pool_sizes": (2, 2),
                                  "dense": 12}
  config.classifier.hidden = (10,)
  config.update_from_flattened_dict({
      "input.image_size": 0, "input.labels_per_class": 4,
      "input.max_test_examples": 40, "input.eval_batch_size": 16,
      "input.batch_size": 8, "steps_per_epoch": 0, "num_epochs": 3,
      "model.head_dropout_rate": 0.25, **overrides})
  return config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("cached")
  last = frozen_features.train_and_evaluate(_config(), str(workdir))
  return workdir, last


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
  """A fresh build of the config: the data and the initial state."""
  return loop.build(_config(), str(tmp_path_factory.mktemp("fresh")))


def test_features_are_the_frozen_backbones(run, fresh):
  workdir, _ = run
  config = _config()
  built, state = fresh
  backbone = models.get_model("core_cnn", None, num_classes=0,
                              **config.model.backbone_config)
  variables = {c: getattr(state, c)["backbone"]
               for c in ("params", "batch_stats")}
  for split in ("train", "test"):
    data = built.setup.data[split]
    n = int(data["mask"].sum()) if "mask" in data else len(data["label"])
    x = (data["image"][:n] / 255.0 - _MEAN) / _STD  # NumPy preprocessing.
    want = backbone.apply(variables, jnp.asarray(x, jnp.float32),
                          train=False)[1]["pre_logits"]
    with np.load(workdir / "features" / f"{split}.npz") as cached:
      np.testing.assert_allclose(cached["features"], want, rtol=1e-4,
                                 atol=1e-5)
      np.testing.assert_array_equal(cached["label"], data["label"][:n])


def test_backbone_is_bit_identical_and_the_head_trained(run, fresh):
  workdir, _ = run
  _, initial = fresh
  saved = helpers.read_checkpoint(workdir)["state"]
  for c in ("params", "batch_stats"):
    jax.tree.map(np.testing.assert_array_equal, saved[c]["backbone"],
                 jax.device_get(getattr(initial, c)["backbone"]))
  changed = jax.tree.map(lambda a, b: not np.array_equal(a, b),
                         saved["params"]["class_head"],
                         jax.device_get(initial.params["class_head"]))
  assert all(jax.tree.leaves(changed))


def test_saved_model_scores_as_the_cached_head(run, fresh):
  """The training loop's own evaluation of the saved whole model (images
  through backbone and class head) gives the head's last test numbers."""
  workdir, last = run
  built, state = fresh
  saved = helpers.read_checkpoint(workdir)["state"]
  state = state.replace(params=saved["params"],
                        batch_stats=saved["batch_stats"])
  scores = loop.evaluate(built.runner, built.runner.to_device_layout(state),
                          built.feed, "test", 16)
  got = reporting.reduce_metrics(jax.device_get(scores), "test")
  assert got["test_accuracy"] == pytest.approx(last["test_accuracy"])
  assert got["test_loss"] == pytest.approx(last["test_loss"], rel=1e-4)


def test_cache_is_reused_only_for_the_same_backbone(run, tmp_path,
                                                    monkeypatch):
  workdir, last = run
  calls = []
  extract = frozen_features.extract
  monkeypatch.setattr(frozen_features, "extract",
                      lambda *a: calls.append(a[2]) or extract(*a))
  for name, features in (("same", "pre_logits"), ("other", "block1")):
    shutil.copytree(workdir / "features", tmp_path / name / "features")
    result = frozen_features.train_and_evaluate(
        _config(**{"model.feature_level": features}), str(tmp_path / name))
    if name == "same":
      assert calls == []
      assert helpers.untimed(result) == helpers.untimed(last)  # Same seed.
  assert calls == ["train", "test"]  # Another level: computed anew.


@pytest.mark.parametrize("override, message", [
    ({"input.augment.flip": True}, "unaugmented"),
    ({"input.augment.crop_padding": 4}, "unaugmented"),
    ({"optimizer.frozen_params": ""}, "frozen backbone"),
])
def test_refuses_configs_whose_features_would_change(override, message,
                                                     tmp_path):
  with pytest.raises(ValueError, match=message):
    frozen_features.train_and_evaluate(_config(**override), str(tmp_path))
  assert not any(tmp_path.iterdir())  # Refused before the workdir changed.


def test_head_training_is_a_plain_optax_loop():
  """Full-batch epochs (any order gives the same mean gradient) against a
  hand-written MLP and optax's own adam with cosine decay and L2."""
  config = _config(**{"model.head_dropout_rate": 0.0, "input.batch_size": 40,
                      "num_epochs": 4})
  rng = np.random.default_rng(0)
  data = {"features": rng.normal(size=(40, 6)).astype(np.float32),
          "label": rng.integers(0, 3, 40).astype(np.int32)}
  test = {"features": rng.normal(size=(30, 6)).astype(np.float32),
          "label": rng.integers(0, 3, 30).astype(np.int32)}
  params = jax.device_get(frozen_features._head(config, 3).init(
      jax.random.key(1), jnp.zeros((1, 6)), train=False)["params"])
  got, history = frozen_features.train_head(config, params, data,
                                         {"test": test})

  def mlp(p, x):
    h = jax.nn.relu(x @ p["hidden0"]["kernel"] + p["hidden0"]["bias"])
    return h @ p["out"]["kernel"] + p["out"]["bias"]

  def loss(p):
    logp = jax.nn.log_softmax(mlp(p, data["features"]))
    return -jnp.mean(logp[np.arange(40), data["label"]])

  opt = config.optimizer
  tx = optax.chain(optax.add_decayed_weights(opt.weight_decay), optax.adam(
      optax.cosine_decay_schedule(opt.learning_rate, 4)))
  want, state = params, tx.init(params)
  for _ in range(4):
    updates, state = tx.update(jax.grad(loss)(want), state, want)
    want = optax.apply_updates(want, updates)
  helpers.assert_trees_close(got, want, atol=1e-5)
  accuracy = np.mean(np.argmax(mlp(want, test["features"]), -1)
                     == test["label"])
  assert history[-1]["test_accuracy"] == pytest.approx(accuracy)
  assert [r["epoch"] for r in history] == [1, 2, 3, 4]
