"""A lost process of a multi-process run ends every other one, with a line.

Each process posts a counter to the JAX coordination service's key-value
store every `timeout / 10` seconds, from a thread, whatever its main thread
does (compiling, a collective, evaluation). A second thread watches the
others' counters: when one has not moved for `timeout` seconds, or the
service itself is gone (process 0 holds it), it logs one line naming the
lost process and the last checkpoint and exits this process with
LOST_PROCESS_EXIT at once: the main thread may be stuck in a collective that
will never finish. JAX's own failure detection is set to fire later
(`jax_heartbeat_timeout`), so that line comes first. Rerunning every process
resumes from the last checkpoint.
"""
import os
import pathlib
import sys
import threading
import time

from absl import logging

from ssl_jax.train import checkpoints

# EX_TEMPFAIL: a temporary failure, worth retrying (requeue every process).
LOST_PROCESS_EXIT = 75
_KEY = "ssl_jax/alive"


def jax_heartbeat_timeout(timeout: float) -> int:
  """The coordination service's own heartbeat timeout for our `timeout`."""
  return int(timeout) + 60


def _client():
  from jax._src import distributed  # pylint: disable=g-import-not-at-top
  return distributed.global_state.client


def _lost(process: int | None, workdir, timeout: float):
  who = ("the coordination service (process 0)" if process is None
         else f"process {process}")
  logging.error(
      "Lost %s: no sign of it for %.0f s. This process stops too. %s Rerun "
      "every process with the same command to resume (exit status %d).", who,
      timeout, checkpoints.last_saved(pathlib.Path(workdir) / "checkpoints"),
      LOST_PROCESS_EXIT)
  logging.flush()
  sys.stderr.flush()
  os._exit(LOST_PROCESS_EXIT)  # pylint: disable=protected-access


def watch(process: int, num_processes: int, workdir, timeout: float):
  """Starts the heartbeat and watcher threads (daemons) of this process;
  without a coordination-service client (another JAX), only JAX's own
  failure detection remains, and a warning says so."""
  try:
    client = _client()
    client.key_value_set(f"{_KEY}/{process}", "0", allow_overwrite=True)
  except Exception as e:  # pylint: disable=broad-except
    logging.warning("No lost-process watch (%s): a lost process ends the "
                    "others through JAX's own heartbeat timeout.", e)
    return
  interval = max(timeout / 10, 0.2)

  def beat():
    count = 0
    while True:
      count += 1
      try:
        client.key_value_set(f"{_KEY}/{process}", str(count),
                             allow_overwrite=True)
      except Exception:  # pylint: disable=broad-except
        pass  # The watcher decides; it sees the service fail too.
      time.sleep(interval)

  def watcher():
    seen = {p: (None, time.monotonic()) for p in range(num_processes)
            if p != process}
    service_ok = time.monotonic()
    while True:
      time.sleep(interval)
      now = time.monotonic()
      try:
        values = dict(client.key_value_dir_get(f"{_KEY}/"))
        service_ok = now
      except Exception:  # pylint: disable=broad-except
        if now - service_ok > timeout:
          _lost(None, workdir, timeout)
        continue
      for p, (value, since) in seen.items():
        new = values.get(f"{_KEY}/{p}")
        if new != value:
          seen[p] = (new, now)
        elif now - since > timeout:
          _lost(p, workdir, timeout)

  for target in (beat, watcher):
    threading.Thread(target=target, daemon=True,
                     name=f"ssl_jax-{target.__name__}").start()
