"""Orbax checkpoints: save, resume, and clear errors for bad checkpoints.

Checkpoints hold any pytree (the train state plus loop bookkeeping); a
restore checks names, shapes and dtypes against the expected tree first, so
a changed model or a corrupt file gives a message naming what differs.
Nothing on disk is ever deleted or rewritten by a failed restore.
"""
import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp


def path_str(path) -> str:
  names = (getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))
           for k in path)
  return "/".join(str(n) for n in names)


def _leaves(tree) -> dict[str, Any]:
  return {path_str(p): x
          for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def mismatches(stored: Any, expected: Any) -> list[str]:
  """Differences in names, shapes and dtypes between two trees of arrays."""
  have, want = _leaves(stored), _leaves(expected)
  out = [f"missing in checkpoint: {k}" for k in sorted(set(want) - set(have))]
  out += [f"not expected: {k}" for k in sorted(set(have) - set(want))]
  for k in sorted(set(have) & set(want)):
    a, b = have[k], want[k]
    if tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype:
      out.append(f"{k}: checkpoint has {a.dtype}{list(a.shape)}, expected "
                 f"{b.dtype}{list(b.shape)}")
  return out


class Checkpoints:
  """A CheckpointManager in `directory` keeping the last `max_to_keep`."""

  def __init__(self, directory: str | pathlib.Path, max_to_keep: int = 3):
    self.directory = pathlib.Path(directory).absolute()
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                             create=True),
        # Named up front so a fresh process can read metadata before restore.
        item_handlers=ocp.StandardCheckpointHandler())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, tree: Any):
    self._manager.save(step, args=ocp.args.StandardSave(tree), force=True)

  def restore(self, like: Any, step: int | None = None) -> Any:
    """Restores `step` (default: latest) into the structure of `like`."""
    step = self.latest_step() if step is None else step
    where = self.directory / str(step)
    try:
      stored = self._manager.item_metadata(step).tree
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f"Checkpoint {where} is unreadable ({type(e).__name__}:"
                       f" {e}). It was left untouched; move it away to resume "
                       "from an earlier step, or use a new workdir.") from e
    diff = mismatches(stored, like)
    if diff:
      raise ValueError(f"Checkpoint {where} does not fit this config "
                       f"({len(diff)} differences):\n  " + "\n  ".join(diff))
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    try:
      return self._manager.restore(step, args=ocp.args.StandardRestore(target))
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f"Checkpoint {where} could not be restored "
                       f"({type(e).__name__}: {e}). It was left untouched; "
                       "move it away to resume from an earlier step.") from e

  def close(self):
    self._manager.wait_until_finished()
    self._manager.close()


def read(directory: str | pathlib.Path, step: int | None = None) -> Any:
  """A checkpoint as saved (default: the latest), on this process's first
  device, whatever topology saved it; for inspection and inference.

  `directory` is a run's checkpoints/ directory, or one saved item (such as
  `convert_keras` writes).
  """
  root = pathlib.Path(directory).absolute()  # Orbax reads no metadata of relative paths.
  if (root / "_CHECKPOINT_METADATA").exists() and step is None:
    return _read_item(root)
  steps = [int(p.name) for p in root.iterdir() if p.name.isdigit()] if (
      root.is_dir()) else []
  if not steps:
    raise FileNotFoundError(f"No checkpoint in {root}; train first.")
  return _read_item(root / str(max(steps) if step is None else step) /
                    "default")


def _read_item(path: pathlib.Path) -> Any:
  checkpointer = ocp.StandardCheckpointer()
  one = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(
      lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=one),
      checkpointer.metadata(path).item_metadata.tree)
  return checkpointer.restore(path, target)
