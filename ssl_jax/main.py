"""Entry point: python -m ssl_jax.main --config=configs/X.py --workdir=DIR.

Kept short on purpose: flags in, one call to the library.
"""
import re
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from ssl_jax import parallel
from ssl_jax import reporting
from ssl_jax import train

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
flags.mark_flags_as_required(["config", "workdir"])


def _parse_flags(argv):
  """absl parsing, with a readable error for an unknown --config.KEY."""
  try:
    return flags.FLAGS(argv)
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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  reporting.quiet_library_logs()
  if _COORDINATOR.value or _DISTRIBUTED.value:
    parallel.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value,
                                    _PROCESS_ID.value)
  logging.info("JAX process %d/%d, devices: %s", jax.process_index(),
               jax.process_count(), jax.devices())
  train.train_and_evaluate(flags.FLAGS.config, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
