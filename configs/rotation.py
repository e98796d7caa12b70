"""Experiment (B), step 1: rotation pretraining (Gidaris et al. 2018).

The backbone learns to tell which of 0/90/180/270 degrees each training
image was turned by; its labels are never used. An online linear probe (the
class head on stop_gradient features, trained on the 200 labeled images)
shows representation quality as it goes.

  python -m ssl_jax.main --config=configs/rotation.py --workdir=runs/rot
  python -m ssl_jax.main --config=configs/finetune.py --workdir=runs/ft \
      --config.init_from=runs/rot

Fields not listed here come from multitask.py (and supervised.py).
"""
import ml_collections

from ssl_jax import config_files


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """`arg`: '' for the full run, 'quick' for a smoke run."""
  c = config_files.sibling(__file__, "multitask", arg)
  c.model.probe = True  # The class head is a probe: it never shapes features.
  c.model.head_dropout_rate = 0.0  # No dropout for the linear probe.
  c.loss.class_weight = 1.0  # Trains the probe only (stop_gradient).
  c.loss.rotation_weight = 1.0  # The pretext task.
  c.input.rotation_mode = "all"  # RotNet: every image in all four rotations.
  return c
