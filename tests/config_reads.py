"""The config fields one run reads, for tests/test_configs.py.

  python tests/config_reads.py WORKDIR NAME ARG [ARG ...]

for each ARG loads configs/NAME.py:ARG,quick, runs it (narrowed: SMALL)
for one step in WORKDIR/<i> while recording every field read (checking and
saving every field do not count), and prints {ARG: the fields no part of
the run read} as JSON. A process of its own keeps the recording apart from
everything else; one for all of a config's variants starts JAX once.
"""
import contextlib
import json
import sys

import ml_collections

from ssl_jax import config_check
from ssl_jax.evals import frozen_features
from ssl_jax.train import loop
from ssl_jax.train import workdir as workdir_lib

import helpers

# Sizes a 1-step run needs; every one is a field the run reads anyway.
SHORT = {"num_epochs": 1, "steps_per_epoch": 1, "log_every_steps": 1}

# Narrow layers where a config has them, for faster compiles. Which fields
# a run reads does not depend on these values (empty hidden layers stay
# empty); EfficientNet's width and depth coefficients, added to its
# backbone_config, are read with the rest of it.
SMALL = {"model.features": (8, 16, 16), "model.dense": 32,
         "model.backbone_config.features": (8, 16, 16),
         "model.backbone_config.dense": 32,
         "model.backbone_config.stem_features": 8}
SMALL_PRETEXT = {"hidden": 16, "dim": 8, "bottleneck": 8, "prototypes": 12,
                 "embed_dim": 8, "head_hidden": (16,)}
SMALL_EFFICIENTNET = {"width_coefficient": 0.25, "depth_coefficient": 0.25}


def leaves(node, prefix=""):
  for key in node.keys():
    value = node[key]
    if isinstance(value, ml_collections.ConfigDict) and value.keys():
      yield from leaves(value, f"{prefix}{key}.")
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
      reads.update(paths[id(self)] + p for p in leaves(self))
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


def _shrink(config):
  """SMALL's widths, where `config` has the field (hidden layers: if any)."""
  def update(node, small):
    for path, value in small.items():
      *parents, leaf = path.split(".")
      parent = node
      for key in parents:
        parent = parent.get(key, {})
      if isinstance(parent, ml_collections.ConfigDict) and parent.get(leaf):
        parent[leaf] = value
  update(config, SMALL)
  for cfg in config.get("pretext", {}).values():
    update(cfg, SMALL_PRETEXT)
  if config.get("model", {}).get("backbone") == "efficientnet":
    config.model.backbone_config.update(SMALL_EFFICIENTNET)


def unread(name: str, arg: str, workdir) -> list[str]:
  """The fields of configs/NAME.py:ARG,quick that a 1-step run never reads."""
  config = helpers.load_config(name, ",".join(filter(None, [arg, "quick"])))
  for key, value in SHORT.items():
    config[key] = value
  if "max_test_examples" in config.get("input", {}):
    config.input.max_test_examples = 100
  _shrink(config)
  with _recording(config) as reads:  # As ssl_jax.main chooses the loop.
    run = (frozen_features.train_and_evaluate if config.cache_features
           else loop.train_and_evaluate)
    run(config, workdir)
  return [p for p in leaves(config) if p not in reads]


if __name__ == "__main__":
  workdir, name, *args = sys.argv[1:]
  print(json.dumps({arg: unread(name, arg, f"{workdir}/{i}")
                    for i, arg in enumerate(args)}))
