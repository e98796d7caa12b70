"""Experiment (B), step 1: pretext pretraining (rotation by default).

The backbone learns the pretext tasks alone; labels are never used to
shape it. An online linear probe (the class head on stop_gradient
features, trained on the 200 labeled images) shows representation quality
as it goes.

  python -m ssl_jax.main --config=configs/pretrain.py --workdir=runs/rot
  python -m ssl_jax.main --config=configs/pretrain.py:pretext=jigsaw --workdir=runs/jig
  python -m ssl_jax.main --config=configs/finetune.py --workdir=runs/ft \
      --config.init_from=runs/rot

Fields not listed here come from multitask.py (and supervised.py, base.py).
"""
import ml_collections

from ssl_jax import config_files


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """`arg`: as multitask.py's (backbone=, pretext=, quick)."""
  c = config_files.sibling(__file__, "multitask", arg)
  c.classifier.probe = True  # The class head is a probe: it never shapes features.
  c.model.head_dropout_rate = 0.0  # No dropout for the linear probe.
  return c
