"""Test setup: several CPU devices, so multi-device code runs without
accelerators; one JAX compilation cache for the whole session; experiments/
on the path for its helpers (experiments/lib)."""
import atexit
import os
import pathlib
import shutil
import sys
import tempfile

import pytest

# Must be set before JAX initialises its backends. The tests spend more time
# compiling than running, and LLVM's -O1 halves the compile time of -O2
# (XLA's default); -O0 is faster still but gave a NaN loss in one test.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4"
                      " --xla_backend_optimization_level=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Many tests (and the runs of main they start) compile the same steps: a
# cache shared by the xdist workers and their subprocesses compiles each
# once. Set up by the first process (pytest's), removed when it exits; new
# for every session, so no test ever reads another session's programs.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _cache = tempfile.mkdtemp(prefix="ssl_jax_test_jax_cache_")
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] /
                       "experiments"))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  """The generated dataset of tests/lab_plugins/blobs.py, written once."""
  from lab_plugins import blobs  # pylint: disable=g-import-not-at-top
  path = tmp_path_factory.mktemp("blobs")
  blobs.write(path)
  return path


# Files whose tests take a minute or more (runs of main in subprocesses,
# large compiles) start first: `make test` hands out whole files in this
# order (`--dist loadfile --no-loadscope-reorder`), and the longest first
# leave no worker alone with one at the end.
_SLOW_FIRST = ("test_experiments.py", "test_configs.py", "test_distributed.py",
               "test_plugins.py", "test_efficientnet_transfer.py",
               "test_faults.py", "test_pretext_mix.py",
               "test_self_distillation.py")


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(_SLOW_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
