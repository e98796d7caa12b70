"""Entry point: python -m ssl_jax.main --config=configs/X.py --workdir=DIR.

Kept short on purpose: flags in, one call to the library.
"""
import os
import pathlib
import re
import signal
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from ssl_jax.evals import frozen_features
from ssl_jax.train import checkpoints
from ssl_jax.train import hosts
from ssl_jax.train import loop
from ssl_jax.train import parallel
from ssl_jax.train import reporting
from ssl_jax.train import workdir as workdir_lib

# Exit statuses a scheduler can requeue on (experiments/launch/): the state
# was saved, and rerunning the same command resumes. 143 and 130 (128 + the
# signal, as a shell reports them): stopped by SIGTERM, or Ctrl-C, at a step
# boundary after saving; a second Ctrl-C stops at once with 130, keeping
# what was saved. LOST_PROCESS_EXIT: another process of a multi-process run
# was lost (train/hosts.py); rerun every process.
PREEMPTED_EXIT = {signal.SIGTERM: 143, signal.SIGINT: 130}
LOST_PROCESS_EXIT = hosts.LOST_PROCESS_EXIT
# Failures of the input, not of the code: one line, no traceback.
_EXPECTED = (ValueError, FileNotFoundError, FloatingPointError, workdir_lib.Busy)

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for this run.")
config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                lock_config=True)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", "", "host:port of process 0 for a multi-process "
    "run; with --num_processes and --process_id.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 0, "Processes in all.")
_PROCESS_ID = flags.DEFINE_integer("process_id", -1, "This process's index.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Join a multi-process run, auto-detected on SLURM "
    "and TPU pods (no coordinator flags needed there).")
_LOST_PROCESS_TIMEOUT = flags.DEFINE_float(
    "lost_process_timeout", 60.0, "Multi-process runs: seconds without a sign "
    f"of another process before every process stops with exit status "
    f"{hosts.LOST_PROCESS_EXIT} (rerun all to resume).")
_VERBOSE = flags.DEFINE_bool(
    "verbose", False, "Show the traceback of an expected failure (bad config, "
    "missing data, refused rerun); so does $SSL_JAX_TRACEBACK=1.")
_PRINT_CONFIG = flags.DEFINE_bool(
    "print_config", False, "Print the fully resolved config (as the run's "
    "config.json will hold it) and exit; --workdir is not needed.")
flags.mark_flag_as_required("config")


def _verbose(argv=()) -> bool:
  return ("--verbose" in argv or bool(os.environ.get("SSL_JAX_TRACEBACK"))
          or (flags.FLAGS.is_parsed() and _VERBOSE.value))


def _parse_flags(argv):
  """absl parsing; a bad flag or config file is one line, not a traceback."""
  try:
    parsed = flags.FLAGS(argv)
    flags.FLAGS.config.keys()  # A config file that failed to load: fail here.
    return parsed
  except (AttributeError, KeyError) as e:
    # The key is the first quoted word (nested keys carry a "Did you mean"
    # hint, escaped, after it).
    key = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", str(e))[0]
    bad = [a.split("=")[0] for a in argv
           if a.startswith("--config.") and key in a.split("=")[0]]
    files = [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    sys.exit(f"Unknown config key {key!r} in {' '.join(bad)}: the config "
             f"{' '.join(files)} has no such field (its get_config() lists "
             "every field with a comment).")
  except Exception as e:  # pylint: disable=broad-except
    if _verbose(argv):
      raise
    # config_flags puts the config file's traceback in the message: its
    # last line is the error itself.
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    sys.exit(f"ssl_jax.main: bad flags: {lines[-1] if lines else repr(e)}")


def _fail(e: Exception):
  """Exits non-zero with `e` as one message, unless a traceback is asked."""
  if _verbose():
    raise e
  sys.exit(f"ssl_jax.main: {type(e).__name__}: {e}")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if _PRINT_CONFIG.value:
    print(workdir_lib.config_json(flags.FLAGS.config))
    return
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required.")
  reporting.quiet_library_logs()
  if _COORDINATOR.value or _DISTRIBUTED.value:
    parallel.initialize_distributed(
        _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
        hosts.jax_heartbeat_timeout(_LOST_PROCESS_TIMEOUT.value))
    if jax.process_count() > 1 and _WORKDIR.value:
      hosts.watch(jax.process_index(), jax.process_count(), _WORKDIR.value,
                  _LOST_PROCESS_TIMEOUT.value)
  logging.info("JAX process %d/%d, devices: %s", jax.process_index(),
               jax.process_count(), jax.devices())
  try:
    config = flags.FLAGS.config
    run = (frozen_features.train_and_evaluate if config.get("cache_features")
           else loop.train_and_evaluate)
    run(config, _WORKDIR.value)
  except loop.Preempted as e:
    logging.warning("%s", e)
    sys.exit(PREEMPTED_EXIT[e.signum])
  except KeyboardInterrupt:
    logging.warning("Ctrl-C twice: stopped at once. %s Rerun the same command "
                    "to resume.", checkpoints.last_saved(
                        pathlib.Path(_WORKDIR.value) / "checkpoints"))
    sys.exit(PREEMPTED_EXIT[signal.SIGINT])
  except _EXPECTED as e:
    _fail(e)


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
