"""The main job, experiment (C): one backbone, a class head and pretext-task
heads, trained jointly on 200 labeled + 49,800 unlabeled CIFAR-10 images.

  python -m ssl_jax.main --config=configs/multitask.py --workdir=/tmp/mt
  python -m ssl_jax.main --config=configs/multitask.py:quick --workdir=/tmp/q
  python -m ssl_jax.main --config=configs/multitask.py:demo --workdir=/tmp/d
  python -m ssl_jax.main --config=configs/multitask.py:demo,pretext=none \
      --workdir=/tmp/d0  # The same backbone and steps on the labels alone.
  python -m ssl_jax.main --config=configs/multitask.py:backbone=resnet --workdir=/tmp/r
  python -m ssl_jax.main --config=configs/multitask.py:pretext=rotation+exemplar \
      --workdir=/tmp/re --config.pretext.exemplar.weight=0.5
  python -m ssl_jax.main --config=configs/multitask.py --workdir=/tmp/mt \
      --config.classifier.weight=10 --config.pretext.rotation.weight=1

Fields not listed here (data, optimizer, loop) come from supervised.py and
base.py; each pretext task's fields from its module's get_config().
"""
import ml_collections

from ssl_jax import config_files
from ssl_jax import models
from ssl_jax import plugins


def pretext_key(name: str) -> str:
  """A pretext's key in config.pretext: its short name, or an import path's
  last part ('my_lab.context' -> 'context')."""
  return name.replace(":", ".").rsplit(".", 1)[-1]


def pretext_config(name: str) -> ml_collections.ConfigDict:
  """The fields of pretext `name` (a short name or an import path)."""
  c = plugins.load("pretext", name, "pretext=").get_config()
  c.name = name  # The plug-in: a built-in's short name or an import path.
  return c


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """`arg`: comma-separated backbone=NAME (a model from ssl_jax.models),
  pretext=NAME[+NAME...] (built-ins of ssl_jax.pretext or import paths of
  modules of your own; default rotation; 'none':
  the class head alone, on labeled images only), teacher=WORKDIR
  (self-training: a trained image run's confident guesses label the pool),
  quick (a smoke run), demo (`make run`'s budget: ~5 minutes on a 2-core
  laptop)."""
  args = config_files.parse_arg(
      arg, {"backbone", "pretext", "teacher", "quick", "demo"})
  quick = "quick" in args
  c = config_files.sibling(__file__, "supervised", "quick" if quick else "")
  c.task = "pretext_mix"  # Labeled + unlabeled batches, class + pretext heads.

  c.input.batch_size = 16 if quick else 32  # Labeled images per step.
  # Unlabeled images per step (S4L's ratio).
  c.input.unlabeled_batch_size = 16 if quick else 96

  c.model = ml_collections.ConfigDict()
  c.model.name = "multihead"  # Backbone + heads (ssl_jax/models/multihead.py).
  c.model.backbone = args.get("backbone", "core_cnn")  # From ssl_jax.models.
  # The backbone's fields, its defaults (the core CNN's are the seeds' net).
  c.model.backbone_config = models.default_fields(c.model.backbone)
  c.model.feature_level = "pre_logits"  # Backbone feature the heads read.
  c.model.head_dropout_rate = 0.3  # Dropout on the features before the heads.
  c.model.dtype = "float32"  # Or bfloat16 compute; params, stats, logits f32.
  c.classifier.weight = 1.0  # w_cls: weight of the class loss.
  c.classifier.probe = False  # Reads stop_gradient features (pretraining).

  # Weighted k-NN monitor of the backbone's features each epoch (ssl_jax/evals/knn.py):
  # {split}_knn_accuracy, the bank the labeled images only.
  c.knn = ml_collections.ConfigDict()
  c.knn.k = 200  # Neighbours (InstDisc, solo-learn); 0 = no monitor.
  c.knn.temperature = 0.1  # Votes weigh exp(cosine similarity / temperature).
  # Also {split}_knn_all_labels_accuracy: every training image in the bank,
  # with labels the semi-supervised protocol does not allow.
  c.knn.all_labels = False

  if "teacher" in args:
    # Self-training (ssl_jax/pretext/self_training.py; S4L's MOAM): a trained
    # run labels the pool once; its confident guesses train the class head.
    c.self_training = ml_collections.ConfigDict()
    c.self_training.teacher = args["teacher"]  # Workdir of a trained run.
    c.self_training.threshold = 0.95  # Top class probability to keep a guess.

  # Pretext tasks, each under its key with its weight w_k and fields.
  names = args.get("pretext", "rotation")
  c.pretext = ml_collections.ConfigDict()
  for name in [] if names == "none" else names.split("+"):
    c.pretext[pretext_key(name)] = pretext_config(name)
  if not c.pretext:  # Nothing reads unlabeled images.
    c.input.unlabeled_batch_size = 0

  if "demo" in args:
    c.num_epochs = 2  # 2 x 150 steps: ~4 minutes of a laptop core.
    c.steps_per_epoch = 150
    c.log_every_steps = 25
    # w_cls : w_rot = 1 : 10, the best ratio of experiments/README.md's sweep.
    for cfg in c.pretext.values():
      cfg.weight = 10.0
  elif not quick:
    c.num_epochs = 30  # Epochs of `steps_per_epoch` steps.
    c.steps_per_epoch = 0  # 0 = one pass over the unlabeled pool.
    c.log_every_steps = 100  # Progress line (steps/s, ETA) interval.
  return c
