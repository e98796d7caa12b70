"""Data parallelism: a 1-D `data` mesh over all devices, with jit or pmap.

`jit` (default): parameters replicated, batches sharded on `data`; XLA adds
the gradient all-reduce, and BatchNorm statistics are global-batch for free.
`pmap` (maintenance mode in JAX, kept for comparison and old habits): the same
step with an explicit `axis_name`, single-process only.
Both return state and metrics in the same layout, so the training loop,
checkpoints and tests do not care which one ran.
"""
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"


def initialize_distributed(coordinator_address: str = "",
                           num_processes: int = 0, process_id: int = -1,
                           heartbeat_timeout: int = 100):
  """Joins a multi-process run (explicit address, or auto-detect on SLURM/TPU).

  On CPU, collectives across processes go through gloo. After
  `heartbeat_timeout` seconds without news of a process, JAX's coordination
  service aborts the others.
  """
  if jax.config.jax_platforms in (None, "", "cpu") or "cpu" in str(
      jax.config.jax_platforms):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  kwargs = {"heartbeat_timeout_seconds": heartbeat_timeout}
  if coordinator_address:
    kwargs.update(coordinator_address=coordinator_address,
                  num_processes=num_processes, process_id=process_id)
  jax.distributed.initialize(**kwargs)


def make_mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(AXIS))


def put_replicated(tree: Any, mesh: Mesh) -> Any:
  """Places host arrays (the same on every process) on all devices."""
  sharding = replicated(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
      tree)


class Runner:
  """Jitted (or pmapped) train/eval steps and batch gathering for one mesh.

  `take(data, indices, i)` gathers row `i` of a device-resident index table
  from device-resident data and shards it over the mesh, so an epoch runs
  without host round trips. States passed in and out are in the jit layout
  (replicated); the pmap variant converts at its boundary.
  """

  def __init__(self, mode: str, mesh: Mesh, train_step: Callable,
               eval_step: Callable):
    if mode not in ("jit", "pmap"):
      raise ValueError(f"config.parallel must be 'jit' or 'pmap', got {mode!r}.")
    if mode == "pmap" and jax.process_count() > 1:
      raise ValueError("parallel='pmap' runs in one process only; use 'jit' "
                       "for multi-host runs.")
    self.mode, self.mesh = mode, mesh
    self.num_devices = mesh.devices.size
    repl, shard = replicated(mesh), sharded(mesh)
    if mode == "jit":
      self.train = jax.jit(train_step, in_shardings=(repl, shard, repl),
                           out_shardings=(repl, repl), donate_argnums=0)
      self.eval = jax.jit(eval_step, in_shardings=(repl, shard),
                          out_shardings=repl)
      split = lambda x: x
    else:
      self.train = jax.pmap(functools.partial(train_step, axis_name=AXIS),
                            axis_name=AXIS, in_axes=(0, 0, None),
                            donate_argnums=0)
      self.eval = jax.pmap(functools.partial(eval_step, axis_name=AXIS),
                           axis_name=AXIS)
      split = lambda x: x.reshape((self.num_devices, -1) + x.shape[1:])
      # One program for the whole tree rather than an eager slice per leaf.
      self._first_copy = jax.jit(
          lambda tree: jax.tree.map(lambda x: x[0], tree), out_shardings=repl)

    @functools.partial(jax.jit, out_shardings=shard)
    def take(data, indices, i):
      idx = indices[i]
      return jax.tree.map(lambda a: split(a[idx]), data)
    self.take = take

  def check_batch_size(self, batch_size: int, what: str):
    if batch_size % self.num_devices:
      raise ValueError(f"{what}={batch_size} is not divisible by the "
                       f"{self.num_devices} devices of the mesh.")

  def to_device_layout(self, state):
    if self.mode == "jit":
      return state
    return jax.device_put(jax.tree.map(
        lambda x: jnp.broadcast_to(x, (self.num_devices,) + jnp.shape(x)),
        state), sharded(self.mesh))

  def from_device_layout(self, tree):
    """pmap's per-device copies -> one replicated copy (the jit layout)."""
    if self.mode == "jit":
      return tree
    return self._first_copy(tree)

  def zero_metrics(self, state, batch, rng):
    """Replicated zeros shaped like one train step's metrics on `batch`."""
    shapes = jax.eval_shape(self.train, self.to_device_layout(state), batch,
                            rng)[1]
    per_device = (lambda s: s.shape[1:]) if self.mode == "pmap" else (
        lambda s: s.shape)
    return put_replicated(jax.tree.map(
        lambda s: np.zeros(per_device(s), s.dtype), shapes), self.mesh)
