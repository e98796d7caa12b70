"""FixMatch: loss and mask against NumPy, the weak view it pseudo-labels
from, blindness to the pool's labels, and its config end to end."""
import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax.data import input_pipeline
from ssl_jax.pretext import fixmatch
from ssl_jax.train import loop

import helpers


def _log_softmax(z):
  z = np.asarray(z, np.float64)
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _fixed(seed=0, n=10, classes=4):
  rng = np.random.default_rng(seed)
  weak = rng.normal(size=(n, classes)).astype(np.float32) * 3
  strong = rng.normal(size=(n, classes)).astype(np.float32)
  labeled = np.array([1, 0, 0, 0, 0, 0, 0, 0, 1, 0], np.float32)
  mask = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0], np.float32)  # Row 9: pad.
  labels = rng.integers(0, classes, n).astype(np.int32)
  return weak, strong, labeled, mask, labels


def test_loss_and_mask_against_numpy():
  weak, strong, labeled, mask, labels = _fixed()
  p = np.exp(_log_softmax(weak))
  pool = mask * (1 - labeled)  # Rows 1-7: unlabeled and valid.
  cfg = fixmatch.get_config()
  cfg.threshold = float(np.sort(p.max(-1)[1:8])[3])  # 4 of the 7 confident.
  keep = (p.max(-1) >= cfg.threshold) * pool
  assert keep.sum() == 4
  ce = -_log_softmax(strong)[np.arange(10), p.argmax(-1)]
  loss, metrics = jax.jit(lambda *a: fixmatch.loss(
      cfg, a[0], None, a[1], class_logits=a[2], labeled=a[3], labels=a[4]))(
          strong, mask, weak, labeled, labels)
  # FixMatch divides by all unlabeled images, not by the confident ones.
  np.testing.assert_allclose(loss, (ce * keep).sum() / 7, rtol=1e-5)
  np.testing.assert_allclose(metrics["mask_rate"], [4, 7])
  right = ((p.argmax(-1) == labels) * keep).sum()
  np.testing.assert_allclose(metrics["pseudo_precision"], [right, 4])


def test_evaluation_scores_the_class_head_alone():
  """No strong views at evaluation: no loss, the rates over valid images."""
  weak, _, _, mask, labels = _fixed(1)
  cfg = fixmatch.get_config()
  cfg.threshold = 0.6
  views = fixmatch.transform(cfg, jnp.zeros((10, 8, 8, 3), jnp.uint8), None,
                             False)
  assert views.images.shape[0] == 0
  loss, metrics = fixmatch.loss(cfg, jnp.zeros((0, 4)), views, mask[:0],
                                class_logits=weak, labeled=mask, labels=labels)
  p = np.exp(_log_softmax(weak))
  keep = (p.max(-1) >= 0.6) * mask
  assert float(loss) == 0.0
  np.testing.assert_allclose(metrics["mask_rate"], [keep.sum(), mask.sum()])
  np.testing.assert_allclose(
      metrics["pseudo_precision"],
      [((p.argmax(-1) == labels) * keep).sum(), keep.sum()])


def test_pseudo_labels_come_from_each_images_unrotated_row():
  """With rotation the class head reads rotation's 0-degree rows: the rows
  the loss's `class_logits` come from hold the batch images themselves."""
  config = helpers.load_config("fixmatch", "quick,pretext=fixmatch+rotation")
  config.input.augment.update(crop_padding=0, flip=False)
  config.pretext.rotation.mode = "all"  # RotNet's: the class head reads it.
  from ssl_jax.tasks import pretext_mix  # pylint: disable=g-import-not-at-top
  task, _ = pretext_mix.make(config, np.zeros(3), np.ones(3), 10, 1)
  rng = np.random.default_rng(0)
  batch = {"image": rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8),
           "label": np.arange(6, dtype=np.int32),
           "labeled": np.array([1, 1, 0, 0, 0, 0], np.float32)}
  out = jax.jit(lambda b: task.expand(b, jax.random.key(0), True))(batch)
  rows = np.asarray(out["image_rows"])
  np.testing.assert_array_equal(
      np.asarray(out["groups"]["rotation"])[rows], batch["image"])
  np.testing.assert_array_equal(out["labeled"], batch["labeled"])


def _run(data_dir, workdir, relabel_pool=False, monkeypatch=None):
  config = helpers.load_config("fixmatch",
                               "quick,backbone=lab_plugins.tiny_net")
  config.input.update(name="lab_plugins.blobs", data_dir=str(data_dir),
                      labels_per_class=5, batch_size=8, eval_batch_size=16,
                      max_test_examples=0)
  config.update(num_epochs=2, steps_per_epoch=2)
  config.optimizer.update(schedule="constant", learning_rate=0.1)
  config.pretext.fixmatch.threshold = 0.3  # Guesses from the first steps.
  if relabel_pool:
    load = input_pipeline.load

    def relabelled(*args, **kwargs):
      data, info = load(*args, **kwargs)
      # Every pool image the same class: any guess's precision changes.
      data["unlabeled"]["label"] = np.zeros_like(data["unlabeled"]["label"])
      return data, info
    monkeypatch.setattr(input_pipeline, "load", relabelled)
  loop.train_and_evaluate(config, workdir)
  return [helpers.untimed(r) for r in helpers.read_records(workdir)]


def test_the_pools_true_labels_change_nothing_but_the_precision(
    data_dir, tmp_path, monkeypatch):
  plain = _run(data_dir, tmp_path / "plain")
  swapped = _run(data_dir, tmp_path / "swapped", True, monkeypatch)
  a = helpers.read_checkpoint(tmp_path / "plain")["state"]
  b = helpers.read_checkpoint(tmp_path / "swapped")["state"]
  jax.tree.map(np.testing.assert_array_equal, a, b)
  precision = lambda k: "pseudo_precision" in k
  for x, y in zip(plain, swapped, strict=True):
    assert ({k: v for k, v in x.items() if not precision(k)} ==
            {k: v for k, v in y.items() if not precision(k)})
  assert plain[-1]["train_fixmatch_mask_rate"] > 0  # Guesses were used,
  assert any(x[k] != y[k] for x, y in zip(plain, swapped)  # and scored.
             for k in x if precision(k) and x[k] == x[k])
  assert "ema_test_accuracy" in plain[-1]  # FixMatch reports the EMA's.
