"""Self-training: a trained model's confident guesses as labels for the pool.

S4L's "MOAM" steps 2-3 (Zhai et al., 2019): a teacher run (e.g. the
two-head rotation run) labels the unlabeled pool once; the images whose top
class probability reaches `self_training.threshold` then train the class
head as if labeled, next to the pretext losses on every pool image. We
chose this over FixMatch's online consistency loss because it costs one
forward pass of the pool per run instead of two extra passes per step: on a
2-core CPU the step is the budget, and FixMatch's results need ~10^6 steps.

The pseudo-labels are the teacher's argmax and nothing else: the pool's
true labels are read only for the log line that says how many are right.
"""
import json
import pathlib

from absl import logging
import numpy as np

from ssl_jax import inference

FILE = "pseudo_labels.json"


def pseudo_label(cfg, images, true_labels: np.ndarray, image_shape,
                 num_classes: int, batch_size: int, workdir=None):
  """(labels int32, confident float32 0/1) for `images` (array or Rows):
  the teacher's argmax, and whether its probability is >= cfg.threshold.
  `true_labels` (-1: unknown) only feed the reported accuracy; with
  `workdir`, the counts go to workdir/pseudo_labels.json."""
  teacher = inference.Predictor(cfg.teacher)
  info = teacher.info
  if (tuple(info.image_shape) != tuple(image_shape)
      or info.num_classes != num_classes):
    raise ValueError(
        f"self_training.teacher {cfg.teacher} was trained on images "
        f"{tuple(info.image_shape)} with {info.num_classes} classes; this run "
        f"has {tuple(image_shape)} and {num_classes}.")
  labels, confidence = [], []
  for i in range(0, len(images), batch_size):
    probs = teacher(np.asarray(images[i:i + batch_size]))["class"]
    labels.append(probs.argmax(-1))
    confidence.append(probs.max(-1))
  labels = np.concatenate(labels).astype(np.int32)
  confident = np.concatenate(confidence) >= cfg.threshold
  known = confident & (true_labels >= 0)
  stats = {"teacher": str(cfg.teacher), "threshold": cfg.threshold,
           "pool": len(labels), "pseudo_labeled": int(confident.sum()),
           # Of the pseudo-labels whose image has a true label: for the log.
           "accuracy": (float(np.mean(labels[known] == true_labels[known]))
                        if known.any() else None)}
  logging.info("Self-training: the teacher labels %d of %d pool images with "
               "p >= %g; %s of those with a true label are right.",
               stats["pseudo_labeled"], stats["pool"], cfg.threshold,
               "none" if stats["accuracy"] is None
               else f"{100 * stats['accuracy']:.2f}%")
  if workdir is not None:
    (pathlib.Path(workdir) / FILE).write_text(json.dumps(stats, indent=2))
  return labels, confident.astype(np.float32)
