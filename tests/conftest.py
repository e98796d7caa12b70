"""Test setup: several CPU devices, so multi-device code runs without
accelerators; experiments/ on the path for its helpers (experiments/lib)."""
import os
import pathlib
import sys

# Must be set before JAX initialises its backends.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] /
                       "experiments"))
