"""Experiment (B), step 1: self-supervised pretraining (rotation by default).

The backbone learns the pretext tasks alone; labels are never used to
shape it. An online linear probe (the class head on stop_gradient
features, trained on the 200 labeled images) and the k-NN monitor show
representation quality as it goes.

  python -m ssl_jax.main --config=configs/pretrain.py --workdir=runs/rot
  python -m ssl_jax.main --config=configs/pretrain.py:pretext=jigsaw --workdir=runs/jig
  python -m ssl_jax.main --config=configs/pretrain.py:pretext=byol --workdir=runs/byol
  python -m ssl_jax.main --config=configs/finetune.py --workdir=runs/ft \
      --config.init_from=runs/rot
  # GPU: lightly's CIFAR-10 benchmark protocol (ResNet-18, 200 epochs).
  python -m ssl_jax.main --config=configs/pretrain.py:pretext=dino,lightly \
      --workdir=runs/dino_r18

Fields not listed here come from multitask.py (and supervised.py, base.py).
"""
import ml_collections

from ssl_jax import config_files


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """`arg`: as multitask.py's (backbone=, pretext=, quick), and lightly:
  lightly's CIFAR-10 benchmark (a CIFAR ResNet-18, 200 epochs of 128
  images, SGD 0.06 x 128 / 256 with momentum 0.9 and weight decay 5e-4,
  cosine; k-NN with k = 200 on all 50,000 training labels), for a GPU."""
  lightly = "lightly" in arg.split(",")
  rest = [a for a in arg.split(",") if a and a != "lightly"]
  c = config_files.sibling(__file__, "multitask", ",".join(
      rest + ["backbone=resnet"] * lightly))
  c.classifier.probe = True  # The class head is a probe: it never shapes features.
  c.model.head_dropout_rate = 0.0  # No dropout for the linear probe.
  if lightly:
    c.model.backbone_config.update(stem_features=64, first_stride=1,
                                   features=(64, 128, 256, 512),
                                   stage_sizes=(2, 2, 2, 2))
    c.input.batch_size = 16  # Labeled images per step (the probe's).
    c.input.unlabeled_batch_size = 112  # 128 images a step in all.
    c.num_epochs = 200
    c.optimizer.name = "momentum"
    c.optimizer.momentum = 0.9
    c.optimizer.nesterov = False
    c.optimizer.learning_rate = 0.06 * 128 / 256
    c.optimizer.weight_decay = 5e-4
    c.knn.all_labels = True
  return c
