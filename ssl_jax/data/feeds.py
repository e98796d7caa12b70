"""Where batches come from: the devices' memory, or a stream from the host.

`config.input.pipeline` picks the path, and both give the same batches in
the same order, since the order is a pure function of (seed, epoch, step)
(`input_pipeline.stream_indices`):
- 'device': every split lives whole on every device as uint8 and batches are
  gathered by index inside jitted code, with no host round trip per step:
  the fastest path for datasets that fit (CIFAR-10, bAbI).
- 'stream': images stay where they are stored, as `data.rows.Rows` over
  CIFAR-10's files or TFDS's ArrayRecord files (other sources: in host
  memory); each process reads only its own devices' rows of each step's
  indices, in Grain's reader threads, and the batches are put on the devices
  a few steps ahead of the one running. Augmentation and pretext transforms
  still run inside the jitted step.
- 'auto' (default): 'device' unless the splits would take more than
  `input.device_memory_gb` of each device's memory.
Resuming needs no iterator state beyond the step the checkpoint holds.
"""
from typing import Iterator

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax.train import parallel


def nbytes(data: dict) -> int:
  return sum(a.nbytes for a in jax.tree.leaves(data))


def choose(config, data: dict) -> str:
  """'device' or 'stream' for `config.input.pipeline` (checked by
  config_check) and these splits."""
  pipeline = config.input.pipeline
  if pipeline != "auto":
    return pipeline
  return ("stream" if nbytes(data) > config.input.device_memory_gb * 2**30
          else "device")


def make(config, runner: parallel.Runner, data: dict):
  """The feed `config` asks for over `data` ({split: {name: host array}})."""
  if choose(config, data) == "device":
    return DeviceFeed(runner, data)
  return StreamFeed(runner, data, config.input.get("stream_threads", 8),
                    config.input.get("stream_prefetch", 16))


class DeviceFeed:
  """Splits replicated on every device; batches gathered inside jit."""
  kind = "device"

  def __init__(self, runner: parallel.Runner, data: dict):
    self.runner = runner
    self.data = {k: parallel.put_replicated(v, runner.mesh)
                 for k, v in data.items()}

  def batches(self, split: str, table, start: int = 0) -> Iterator:
    """Row `start`, `start + 1`, ... of the (steps, batch) index `table`
    (host or device), as batches sharded over the mesh."""
    if not isinstance(table, jax.Array):
      table = parallel.put_replicated(np.asarray(table, np.int32),
                                      self.runner.mesh)
    for i in range(start, table.shape[0]):
      yield self.runner.take(self.data[split], table, i)


class StreamFeed:
  """Splits on the host, batches read by Grain and prefetched to devices."""
  kind = "stream"

  def __init__(self, runner: parallel.Runner, data: dict, threads: int,
               prefetch: int):
    self.runner, self.data = runner, data
    self.threads, self.prefetch = threads, prefetch
    devices = list(runner.mesh.devices.flat)
    self._mine = [i for i, d in enumerate(devices)
                  if d.process_index == jax.process_index()]
    self._sharding = parallel.sharded(runner.mesh)
    self._logged = False

  def local_rows(self, batch_size: int) -> np.ndarray:
    """The rows of a global batch that this process's devices hold: device
    i of the mesh holds rows [i * b, (i + 1) * b), b = batch / devices."""
    per = batch_size // len(self.runner.mesh.devices.flat)
    return np.concatenate([np.arange(i * per, (i + 1) * per)
                           for i in self._mine])

  def _put(self, local: dict, global_batch: int) -> dict:
    d = len(self.runner.mesh.devices.flat)

    def put(x):
      shape = (global_batch,) + x.shape[1:]
      if self.runner.mode == "pmap":  # pmap's (devices, batch / devices).
        x = x.reshape((d, -1) + x.shape[1:])
        shape = x.shape
      return jax.make_array_from_process_local_data(self._sharding, x, shape)
    return jax.tree.map(put, local)

  def batches(self, split: str, table, start: int = 0) -> Iterator:
    """As DeviceFeed.batches; this process reads only its own rows."""
    import grain  # pylint: disable=g-import-not-at-top
    from grain.experimental import ThreadPrefetchIterDataset  # pylint: disable=g-import-not-at-top
    table = np.asarray(jax.device_get(table))
    global_batch = table.shape[1]
    rows = self.local_rows(global_batch)
    if not self._logged:
      logging.info("Streaming: process %d reads rows %d-%d of each batch of "
                   "%d, images from %s.", jax.process_index(), rows[0],
                   rows[-1], global_batch,
                   getattr(self.data[split]["image"], "where", "memory"))
      self._logged = True
    table = table[:, rows]
    arrays = self.data[split]
    ds = grain.MapDataset.range(start, table.shape[0]).map(
        lambda i: jax.tree.map(lambda a: np.asarray(a[table[i]]), arrays))
    ds = ds.to_iter_dataset(grain.ReadOptions(
        num_threads=self.threads, prefetch_buffer_size=self.prefetch))
    ds = ThreadPrefetchIterDataset(
        ds.map(lambda b: self._put(b, global_batch)),
        prefetch_buffer_size=2)  # On the devices ahead of the step.
    return iter(ds)


def sample_batch(feed, split: str, batch_size: int):
  """A batch of `batch_size` copies of example 0, for shapes."""
  return next(iter(feed.batches(split, jnp.zeros((1, batch_size), jnp.int32))))
