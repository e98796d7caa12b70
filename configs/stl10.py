"""Rotation pretraining on STL-10 (RotNet's and S4L's larger setting), fed by
the streaming input path: for a GPU machine.

  python -m ssl_jax.main --config=configs/stl10.py --workdir=runs/stl10_rot
  python -m ssl_jax.main --config=configs/stl10.py:pretext=jigsaw --workdir=runs/stl10_jig

STL-10 comes from TFDS (`tfds.load('stl10')`, a 2.5 GB download; the
`input.data_dir` is TFDS's). Its 100,000 unlabeled 96x96 images (2.8 GB of
uint8) join the unlabeled pool; they stay in host memory and only batches go
to the devices, so one accelerator needs a few hundred MB for the data. The
online linear probe reads the 5,000 labeled training images (all 10 x 500,
the dataset's own protocol) and the k-NN monitor's bank is the same images.
Fields not listed here come from pretrain.py (and multitask.py, ...).
"""
import ml_collections

from ssl_jax import config_files


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """`arg`: as pretrain.py's (pretext=, quick); the backbone is the ResNet."""
  args = config_files.parse_arg(arg, {"pretext", "quick"})
  c = config_files.sibling(__file__, "pretrain", ",".join(
      ["backbone=resnet"] + [a for a in arg.split(",") if a]))
  quick = "quick" in args
  c.input.name = "stl10"  # TFDS's 'stl10' (train, test, unlabelled).
  c.input.pipeline = "stream"  # The splits stay on the host.
  c.input.stream_threads = 8  # Grain reader threads.
  c.input.stream_prefetch = 16  # Batches read ahead on the host.
  c.input.labels_per_class = 2 if quick else -1  # -1: all 5,000 labels.
  c.input.batch_size = 16 if quick else 64  # Labeled images per step.
  c.input.unlabeled_batch_size = 16 if quick else 256  # Unlabeled per step.
  c.input.eval_batch_size = 8 if quick else 500  # 8,000 test images.
  c.input.augment.crop_padding = 12  # 1/8 of the side, as 4 of 32.
  if quick:  # A smoke run (and the test on TFDS's mock data).
    c.model.backbone_config.update(stem_features=8, features=(8, 8, 16))
  if not quick:
    c.num_epochs = 30  # Epochs of one pass over the 100k+ unlabeled pool.
  return c
