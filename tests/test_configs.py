"""Every shipped config and variant holds only fields its run reads, and
--print_config prints the config.json a run writes."""
import contextlib
import json
import subprocess

import ml_collections
import pytest

from ssl_jax import config_check
from ssl_jax.evals import frozen_features
from ssl_jax.train import loop
from ssl_jax.train import workdir as workdir_lib

import helpers

# Each config's variants; each runs as its ':quick' version, whose fields are
# checked to be the same as the full variant's.
VARIANTS = [
    ("supervised", ""),
    ("multitask", ""), ("multitask", "demo"), ("multitask", "pretext=none"),
    ("multitask", "pretext=jigsaw+exemplar,backbone=resnet"),
    ("pretrain", ""),
    ("finetune", "mode=full"), ("finetune", "mode=linear"),
    ("finetune", "mode=frozen_blocks,blocks=1"),
    ("cnn", ""), ("cnn", "imbalance"), ("cnn", "rebalance"),
    ("memnet", "model=memnet_keras,task=1"), ("memnet", "model=memn2n,task=1"),
    ("memnet", "model=memn2n,task=1,paper"),
    ("memnet", "model=memn2n,task=1,paper,ls=epochs"),
    ("efficientnet_transfer", ""), ("efficientnet_transfer", "finetune"),
]
# Sizes a 1-step run needs; every one is a field the run reads anyway.
SHORT = {"num_epochs": 1, "steps_per_epoch": 1, "log_every_steps": 1}


def _leaves(node, prefix=""):
  for key in node.keys():
    value = node[key]
    if isinstance(value, ml_collections.ConfigDict) and value.keys():
      yield from _leaves(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}"


@contextlib.contextmanager
def _recording(config):
  """Records the config fields read inside the block, by path."""
  paths = {}

  def index(node, prefix):
    paths[id(node)] = prefix
    for key in node.keys():
      if isinstance(node[key], ml_collections.ConfigDict):
        index(node[key], f"{prefix}{key}.")
  index(config, "")
  reads, paused = set(), []
  cls = ml_collections.ConfigDict
  getitem, to_dict = cls.__getitem__, cls.to_dict

  def recorded_getitem(self, key):
    if not paused and id(self) in paths:
      reads.add(paths[id(self)] + str(key))
    return getitem(self, key)

  def recorded_to_dict(self, *args, **kwargs):
    if not paused and id(self) in paths:  # Handed on whole (model fields).
      reads.update(paths[id(self)] + p for p in _leaves(self))
    paused.append(1)
    try:
      return to_dict(self, *args, **kwargs)
    finally:
      paused.pop()

  def unrecorded(fn):
    def call(*args, **kwargs):
      paused.append(1)
      try:
        return fn(*args, **kwargs)
      finally:
        paused.pop()
    return call
  saved = config_check.check, workdir_lib.write_config
  cls.__getitem__, cls.to_dict = recorded_getitem, recorded_to_dict
  # Checking or saving every field is not using it.
  config_check.check = unrecorded(config_check.check)
  workdir_lib.write_config = unrecorded(workdir_lib.write_config)
  try:
    yield reads
  finally:
    cls.__getitem__, cls.to_dict = getitem, to_dict
    config_check.check, workdir_lib.write_config = saved


@pytest.mark.parametrize("name,arg", VARIANTS)
def test_every_field_is_read(tmp_path, name, arg):
  full = helpers.load_config(name, arg)
  quick = helpers.load_config(name, ",".join(filter(None, [arg, "quick"])))
  assert sorted(_leaves(quick)) == sorted(_leaves(full))
  for key, value in SHORT.items():
    quick[key] = value
  if "max_test_examples" in quick.get("input", {}):
    quick.input.max_test_examples = 100
  with _recording(quick) as reads:  # As ssl_jax.main chooses the loop.
    run = (frozen_features.train_and_evaluate if quick.cache_features
           else loop.train_and_evaluate)
    run(quick, tmp_path)
  unread = [p for p in _leaves(quick) if p not in reads]
  assert not unread, f"configs/{name}.py:{arg} fields no run reads: {unread}"


def test_print_config_is_the_config_json_a_run_writes(tmp_path):
  command = helpers.main_command(
      tmp_path, {**SHORT, "optimizer.learning_rate": 0.01},
      "configs/finetune.py:quick,mode=linear")
  printed = subprocess.run(command + ["--print_config"], cwd=helpers.ROOT,
                           capture_output=True, text=True, check=True,
                           env=helpers.cpu_devices(1)).stdout
  assert not tmp_path.joinpath("config.json").exists()  # Nothing written.
  subprocess.run(command, cwd=helpers.ROOT, capture_output=True, check=True,
                 env=helpers.cpu_devices(1))
  written = (tmp_path / "config.json").read_text()
  assert json.loads(printed) == json.loads(written)
  assert json.loads(printed)["optimizer"]["frozen_params"] == "^backbone/"
  assert json.loads(printed)["optimizer"]["learning_rate"] == 0.01
