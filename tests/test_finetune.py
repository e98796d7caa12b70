"""Pretrain -> checkpoint -> fine-tune: exact restores, fresh heads, freezing;
the pretraining k-NN monitor."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.models import get_model
from ssl_jax.models.heads import HeadSpec
from ssl_jax.train import checkpoints
from ssl_jax.train import loop
from ssl_jax.train import optim

import helpers


def _leaves(tree):
  return {checkpoints.path_str(p): x
          for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.fixture(scope="module")
def pretrain_dir(tmp_path_factory):
  """A rotation pretraining run of 2 steps."""
  workdir = tmp_path_factory.mktemp("rotation")
  loop.train_and_evaluate(helpers.tiny_config(
      "pretrain", num_epochs=1, steps_per_epoch=2), workdir)
  return workdir


def test_finetune_restores_backbone_with_fresh_head_and_frozen_blocks(
    pretrain_dir, tmp_path):
  source = helpers.read_checkpoint(pretrain_dir)["state"]
  # With a zero learning rate, the parameters after one step are the start.
  start = {}
  for name, init_from in (("scratch", ""), ("init", str(pretrain_dir))):
    loop.train_and_evaluate(helpers.tiny_config(
        "finetune", "quick", num_epochs=1, steps_per_epoch=1,
        init_from=init_from, **{"optimizer.learning_rate": 0.0}),
                             tmp_path / name)
    start[name] = helpers.read_checkpoint(tmp_path / name)["state"]["params"]
  jax.tree.map(np.testing.assert_array_equal, start["init"]["backbone"],
               source["params"]["backbone"])
  assert sorted(start["init"]) == ["backbone", "class_head"]
  # The head is freshly drawn (as without init_from), not the probe's.
  jax.tree.map(np.testing.assert_array_equal, start["init"]["class_head"],
               start["scratch"]["class_head"])
  assert not np.array_equal(start["init"]["class_head"]["out"]["kernel"],
                            source["params"]["class_head"]["out"]["kernel"])

  # A relative path, as users type it (Orbax needs absolute ones).
  config = helpers.tiny_config("finetune", "mode=frozen_blocks,blocks=2,quick",
                               num_epochs=1, steps_per_epoch=3,
                               init_from=os.path.relpath(pretrain_dir))
  loop.train_and_evaluate(config, tmp_path / "finetune")
  after = helpers.read_checkpoint(tmp_path / "finetune")["state"]["params"]
  assert int(helpers.read_checkpoint(tmp_path / "finetune")["state"][
      "step"]) == 3
  before, now = _leaves(source["params"]["backbone"]), _leaves(
      after["backbone"])
  frozen = [k for k in before if k.split("/")[0] in ("conv1", "norm1",
                                                      "conv2", "norm2")]
  trained = [k for k in before if k not in frozen]
  assert len(frozen) == 8 and len(trained) == 8  # Blocks 3 and dense train.
  for k in frozen:
    np.testing.assert_array_equal(now[k], before[k], err_msg=k)
  for k in trained:
    assert not np.array_equal(now[k], before[k]), k


def test_init_from_starts_the_ema_at_the_backbone(pretrain_dir, tmp_path):
  """The EMA weights start as copies of the pretrained weights: the steps
  donate the state, and a buffer held twice cannot be donated."""
  loop.train_and_evaluate(helpers.tiny_config(
      "multitask", "quick", num_epochs=1, steps_per_epoch=1, ema_decay=0.5,
      init_from=str(pretrain_dir), **{"optimizer.learning_rate": 0.0}),
                           tmp_path)
  state = helpers.read_checkpoint(tmp_path)["state"]
  source = helpers.read_checkpoint(pretrain_dir)["state"]
  # A zero learning rate: the weights, and so their average, stay the start.
  jax.tree.map(np.testing.assert_array_equal,
               state["ema"]["params"]["backbone"], source["params"]["backbone"])
  assert int(state["step"]) == 1


def test_mismatched_backbone_lists_the_parameters(pretrain_dir, tmp_path):
  config = helpers.tiny_config(
      "finetune", "quick", num_epochs=1, steps_per_epoch=1,
      init_from=str(pretrain_dir),
      **{"model.backbone_config.features": (8, 16, 24)})
  with pytest.raises(ValueError) as error:
    loop.train_and_evaluate(config, tmp_path)
  message = str(error.value)
  assert "do not fit this model's backbone" in message
  assert "conv3/kernel: checkpoint has float32[3, 3, 16, 16], expected " \
         "float32[3, 3, 16, 24]" in message
  assert not (tmp_path / "checkpoints").exists() or not any(
      (tmp_path / "checkpoints").iterdir())


def test_frozen_params_pattern_must_match(tmp_path):
  config = helpers.tiny_config("finetune", "quick", num_epochs=1,
                               steps_per_epoch=1,
                               **{"optimizer.frozen_params": "^backbone/cnov"})
  with pytest.raises(ValueError, match="matches no parameter"):
    loop.train_and_evaluate(config, tmp_path)


@pytest.mark.parametrize("backbone,frozen", [
    ("core_cnn", {"conv1", "norm1", "conv2", "norm2"}),
    ("resnet", {"conv0", "norm0", "stage1_0", "stage2_0"})])
def test_frozen_blocks_mode_freezes_the_first_blocks(backbone, frozen):
  config = helpers.load_config(
      "finetune", f"mode=frozen_blocks,blocks=2,backbone={backbone}")
  model = get_model("multihead", {"heads": {"class": HeadSpec(10)}},
                    backbone=backbone, backbone_config={})
  params = model.init(jax.random.key(0), np.zeros((1, 32, 32, 3)),
                      train=False)["params"]
  labels = optim.frozen_labels(config.optimizer.frozen_params)(params)
  got = {name for name, sub in labels["backbone"].items()
         if set(jax.tree.leaves(sub)) == {"frozen"}}
  assert got == frozen
  assert set(jax.tree.leaves(labels["class_head"])) == {"trained"}


def test_knn_monitor_reads_the_saved_model(pretrain_dir, tmp_path):
  """The pretraining record's k-NN accuracy (knn.py) against the saved
  model's features (MultiHead's own pooled features) and NumPy votes over
  the labeled rows only."""
  config = helpers.tiny_config("pretrain", num_epochs=1, steps_per_epoch=2)
  built, _ = loop.build(config, str(tmp_path))
  data, labeled = built.setup.data, built.streams[0][0]
  assert labeled == 50 < len(data["train"]["label"])  # 5 labels per class.
  state = helpers.read_checkpoint(pretrain_dir)["state"]
  model = get_model("multihead", built.setup.model_kwargs,
                    **{k: v for k, v in config.model.items() if k != "name"})
  variables = {"params": state["params"], "batch_stats": state["batch_stats"]}
  info = json.loads((pretrain_dir / "data_info.json").read_text())

  def feats(images):
    x = (images / 255.0 - np.array(info["mean"])) / np.array(info["std"])
    return np.asarray(model.apply(variables, jnp.asarray(x, jnp.float32),
                                  train=False)[1]["image"], np.float64)

  def numpy_knn(queries, bank, labels, k=50, temperature=0.1):
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
    sims = unit(queries) @ unit(bank).T  # k = the whole labeled bank.
    votes = np.zeros((len(queries), 10))
    np.add.at(votes, (np.arange(len(queries))[:, None].repeat(k, 1),
                      labels[np.argsort(-sims, 1)[:, :k]]),
              np.exp(np.sort(sims, 1)[:, ::-1][:, :k] / temperature))
    return votes.argmax(1)

  test = data["test"]
  n = int(test["mask"].sum()) if "mask" in test else len(test["label"])
  guess = numpy_knn(feats(test["image"][:n]),
                    feats(data["train"]["image"][:labeled]),
                    data["train"]["label"][:labeled])
  last = [json.loads(l) for l in (pretrain_dir / "metrics.jsonl").open()][-1]
  assert last["test_knn_accuracy"] == pytest.approx(
      np.mean(guess == test["label"][:n]))
  assert "test_knn_all_labels_accuracy" not in last
