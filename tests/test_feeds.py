"""The streaming input path gives the device path's batches, in its order."""
import jax
import numpy as np
import pytest

from ssl_jax.data import feeds
from ssl_jax.data import input_pipeline
from ssl_jax.data import rows
from ssl_jax.train import loop
from ssl_jax.train import parallel

import helpers


def _run(tmp_path, name, **overrides):
  config = helpers.tiny_config("multitask", "quick", num_epochs=2,
                               **overrides)
  last = loop.train_and_evaluate(config, tmp_path / name)
  return last, helpers.read_checkpoint(tmp_path / name)["state"]


@pytest.mark.parametrize("parallel_mode", ["jit", "pmap"])
def test_stream_trains_as_the_device_path(tmp_path, parallel_mode):
  """Two heads (labeled + unlabeled streams, rotations, k-NN monitor) on 4
  devices: the same parameters, BatchNorm statistics and records, bitwise."""
  runs = {p: _run(tmp_path, p, **{"input.pipeline": p,
                                  "parallel": parallel_mode})
          for p in ("device", "stream")}
  (dev_last, dev), (str_last, stream) = runs["device"], runs["stream"]
  assert helpers.untimed(str_last) == helpers.untimed(dev_last)
  for c in ("params", "batch_stats", "opt_state"):
    jax.tree.map(np.testing.assert_array_equal, stream[c], dev[c])


@pytest.mark.parametrize("lazy", [False, True])
def test_stream_batches_are_the_gathered_rows(lazy):
  """Each streamed batch holds rows table[i] of the host arrays (NumPy
  indexing), sharded as the device path shards them; from `Rows`, only the
  rows of the batches asked for are read."""
  mesh = parallel.make_mesh()
  runner = parallel.Runner("jit", mesh, lambda *a: None, lambda *a: None)
  rng = np.random.default_rng(0)
  data = {"train": {"image": rng.integers(0, 256, (50, 4, 4, 3), np.uint8),
                    "label": rng.integers(0, 10, 50).astype(np.int32)}}
  table = np.asarray(input_pipeline.epoch_indices(jax.random.key(3), 50, 6, 8))
  device = feeds.DeviceFeed(runner, data)
  host, read = data["train"], []
  if lazy:
    data = {"train": {**host, "image": rows.Rows(
        lambda i: read.extend(i) or host["image"][i], 50, (4, 4, 3),
        np.uint8, "test")}}
  stream = feeds.StreamFeed(runner, data, threads=4, prefetch=3)
  got = list(stream.batches("train", table, start=2))
  want = list(device.batches("train", table, start=2))
  assert len(got) == len(want) == 4
  for i, (g, w) in enumerate(zip(got, want)):
    for k in ("image", "label"):
      np.testing.assert_array_equal(np.asarray(g[k]), np.asarray(w[k]))
      np.testing.assert_array_equal(np.asarray(g[k]), host[k][table[i + 2]])
      assert g[k].sharding.is_equivalent_to(w[k].sharding, g[k].ndim)
  if lazy:  # Each row of table[2:] once per time it is drawn; no others.
    assert sorted(read) == sorted(table[2:].ravel())


def test_auto_streams_only_what_exceeds_the_budget():
  config = helpers.tiny_config("multitask", "quick")
  data = {"train": {"image": np.zeros((1000, 32, 32, 3), np.uint8)},
          "test": {"label": np.zeros(1000, np.int32)}}
  size = 1000 * 32 * 32 * 3 + 4000
  config.input.device_memory_gb = size / 2**30
  assert feeds.choose(config, data) == "device"
  config.input.device_memory_gb = (size - 1) / 2**30
  assert feeds.choose(config, data) == "stream"
  config.input.pipeline = "device"
  assert feeds.choose(config, data) == "device"


@pytest.mark.parametrize("sampling", input_pipeline.SAMPLINGS)
def test_an_epoch_draws_as_its_sampling_says(sampling):
  """'permutation' takes each example once a pass; 'replacement' draws each
  index on its own, so m draws from n examples leave n (1 - 1/n)^m of them
  unseen on average (the occupancy formula); stream offsets as for both."""
  n, steps, batch, epochs = 900, 28, 32, 20  # MemN2N's 1k epoch.
  tables = [np.asarray(input_pipeline.stream_indices(
      jax.random.key(e), ((n, batch), (50, 4)), steps, sampling))
            for e in range(epochs)]
  for t in tables:
    assert t.shape == (steps, batch + 4)
    assert t[:, :batch].min() >= 0 and t[:, :batch].max() < n
    assert t[:, batch:].min() >= n and t[:, batch:].max() < n + 50
  seen = [len(np.unique(t[:, :batch])) for t in tables]
  m = steps * batch
  if sampling == "permutation":
    assert seen == [m] * epochs
  else:  # The mean of 20 epochs has a standard error of ~2.
    np.testing.assert_allclose(np.mean(seen), n * (1 - (1 - 1 / n) ** m),
                               atol=10)

def test_an_unknown_sampling_is_refused(tmp_path):
  config = helpers.tiny_config("multitask", "quick",
                               **{"input.pipeline": "device"})
  config.input.sampling = "bootstrap"
  with pytest.raises(ValueError, match="input.sampling must be one of"):
    loop.train_and_evaluate(config, tmp_path)
