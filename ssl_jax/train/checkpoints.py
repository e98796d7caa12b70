"""Orbax checkpoints: save, resume, and clear errors for bad checkpoints.

Checkpoints hold any pytree (the train state plus loop bookkeeping) and the
run's epoch records up to that step (JSON), from which a cut or lost
metrics.jsonl is rebuilt; a restore checks names, shapes and dtypes against
the expected tree first, so a changed model or a corrupt file gives a
message naming what differs.
Nothing on disk is ever deleted or rewritten by a failed restore.
"""
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
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


@jax.jit
def _all_finite(leaves: list) -> jax.Array:
  return jnp.stack([jnp.isfinite(x).all() for x in leaves])


def first_nonfinite(tree: Any) -> str | None:
  """The path of the first float leaf holding an inf or NaN, else None."""
  floats = {k: x for k, x in _leaves(tree).items()
            if jnp.issubdtype(x.dtype, jnp.inexact)}
  if not floats:
    return None
  ok = jax.device_get(_all_finite(list(floats.values())))
  bad = [k for k, good in zip(floats, ok) if not good]
  return bad[0] if bad else None


class Checkpoints:
  """A CheckpointManager in `directory` keeping the last `max_to_keep`."""

  def __init__(self, directory: str | pathlib.Path, max_to_keep: int = 3):
    self.directory = pathlib.Path(directory).absolute()
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                             create=True),
        # Named up front so a fresh process can read metadata before restore.
        item_handlers={"default": ocp.StandardCheckpointHandler(),
                       "history": ocp.JsonCheckpointHandler()})

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def last_good(self) -> str:
    """Where a stopped run resumes from, for error messages."""
    step = self.latest_step()
    if step is None:
      return f"No checkpoint had been saved in {self.directory} yet."
    return (f"The last good checkpoint (step {step}) in {self.directory} is "
            "intact.")

  def check_finite(self, step: int, tree: Any):
    """Raises FloatingPointError if `tree` holds an inf or NaN anywhere."""
    leaf = first_nonfinite(tree)
    if leaf is not None:
      raise FloatingPointError(
          f"Step {step}: {leaf} holds inf or NaN, so the state was not saved "
          f"and the run stopped. {self.last_good()} Lower "
          "optimizer.learning_rate or set optimizer.grad_clip_norm, then "
          "rerun to resume from it.")

  def save(self, step: int, tree: Any, history: list[dict] = ()):
    """Saves `tree` and the epoch records `history` as `step`, once `tree`
    is checked finite: a diverged state is never written and never
    displaces the last good checkpoint."""
    self.check_finite(step, tree)
    self._manager.save(step, args=ocp.args.Composite(
        default=ocp.args.StandardSave(tree),
        history=ocp.args.JsonSave({"records": list(history)})), force=True)

  def history(self, step: int) -> list[dict] | None:
    """The epoch records saved with `step`; None where it holds none."""
    if "history" not in self._manager.item_metadata(step):
      return None
    return self._manager.restore(step, args=ocp.args.Composite(
        history=ocp.args.JsonRestore()))["history"]["records"]

  def restore(self, like: Any, step: int | None = None) -> Any:
    """Restores `step` (default: latest) into the structure of `like`."""
    step = self.latest_step() if step is None else step
    where = self.directory / str(step)
    try:
      stored = self._manager.item_metadata(step)["default"].tree
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
      return self._manager.restore(step, args=ocp.args.Composite(
          default=ocp.args.StandardRestore(target)))["default"]
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
  steps = saved_steps(root)
  if not steps:
    raise FileNotFoundError(f"No checkpoint in {root}; train first.")
  return _read_item(root / str(max(steps) if step is None else step) /
                    "default")


def saved_steps(directory: str | pathlib.Path) -> list[int]:
  """The steps saved in a checkpoints/ directory, from its listing alone
  (Orbax renames a step's folder to its number once the step is complete)."""
  root = pathlib.Path(directory)
  return sorted(int(p.name) for p in root.iterdir()
                if p.name.isdigit()) if root.is_dir() else []


def last_saved(directory: str | pathlib.Path) -> str:
  """Where a stopped run resumes from, from the directory's listing."""
  steps = saved_steps(directory)
  if not steps:
    return f"No checkpoint had been saved in {directory}."
  return f"The last checkpoint is step {steps[-1]} in {directory}."


def write(directory: str | pathlib.Path, tree: Any):
  """Saves `tree` as one item that `read(directory)` (and
  `config.init_from`) reads: what the weight converters write."""
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(pathlib.Path(directory).absolute(), tree)


def _read_item(path: pathlib.Path) -> Any:
  checkpointer = ocp.StandardCheckpointer()
  one = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(
      lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=one),
      checkpointer.metadata(path).item_metadata.tree)
  return checkpointer.restore(path, target)
