"""The class head + pretext mix: masked losses, weights, devices, plug-ins."""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from ssl_jax import pretext
from ssl_jax.models import get_model
from ssl_jax.pretext import jigsaw
from ssl_jax.pretext import mix
from ssl_jax.pretext import rotation
from ssl_jax.tasks import pretext_mix
from ssl_jax.train import parallel
from ssl_jax.train import step as step_lib

import helpers

BACKBONE = {"features": (8, 16, 16), "dense": 32}
MEAN, STD = np.full(3, 0.5, np.float32), np.full(3, 0.25, np.float32)


def _task(names="rotation", class_weight=1.0, augment=True,
          exemplar_augment=True, **weights):
  """The mix task for `names` ('a+b'), with pretext weights by name."""
  config = helpers.load_config("multitask", f"quick,pretext={names}")
  config.classifier.weight = class_weight
  for name, w in weights.items():
    config.pretext[name].weight = w
  config.input.augment.crop_padding = 4 if augment else 0
  config.input.augment.flip = augment
  if "fixmatch" in config.pretext:  # Every guess counts, even untrained.
    config.pretext.fixmatch.threshold = 0.0
    if not augment:  # Strong views equal to their image: nothing drawn.
      config.pretext.fixmatch.update(num_ops=0, cutout=0.0)
  if "exemplar" in config.pretext:  # Keep the copies small and quick.
    config.pretext.exemplar.head_hidden = (16,)
    if not exemplar_augment:  # Copies equal to their image: nothing drawn.
      config.pretext.exemplar.update(crop_padding=0, flip=False,
                                     color_jitter=0.0, grayscale_prob=0.0)
  small = {"byol": {"hidden": 16, "dim": 8}, "simclr": {"head_hidden": (16,)},
           "dino": {"hidden": 16, "bottleneck": 8, "prototypes": 12,
                    "local_crops": 2, "local_size": 32}}
  for name in set(small) & set(config.pretext):
    config.pretext[name].update(small[name])
    if not augment:  # Views equal to their image (resized): nothing drawn.
      config.pretext[name].views.update(
          scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False, jitter_prob=0.0,
          gray_prob=0.0, solarize_prob=(0.0,))
      if name == "dino":
        config.pretext.dino.local_scale = (1.0, 1.0)
  return pretext_mix.make(config, MEAN, STD, 10, total_steps=4)


def _data(batch=16, labeled=4):
  rng = np.random.default_rng(0)
  return {"image": rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8),
          "label": rng.integers(0, 10, (batch,)).astype(np.int32),
          "labeled": (np.arange(batch) % (batch // labeled) == 0).astype(
              np.float32)}


def _state(task, heads, data, axis_name=None, dropout=True, norm="batch"):
  model = get_model(
      "multihead", {"heads": heads},
      backbone_config={**BACKBONE, "dropout_rate": 0.3 * dropout,
                       "norm": norm},
      head_dropout_rate=0.2 * dropout, axis_name=axis_name)
  sample = task.inputs(task.expand(jax.tree.map(lambda a: a[:2], data), None,
                                   False), None, False)
  return step_lib.create_train_state(jax.random.key(1), model, optax.adam(3e-3),
                                     sample, init_state=task.init_state)


def _log_softmax(z):
  z = np.asarray(z, np.float64)
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_masked_loss_equals_hand_computation():
  rng = np.random.default_rng(1)
  n = 12
  logits = {"class": rng.normal(size=(n, 10)), "rotation": rng.normal(size=(
      n, 4))}
  class_mask = (rng.random(n) < 0.4).astype(np.float32)
  rot_mask = (rng.random(n) < 0.8).astype(np.float32)
  label = np.where(class_mask > 0, rng.integers(0, 10, n), -1)  # -1: none.
  target = rng.integers(0, 4, n)
  batch = {"label": label, "class_mask": class_mask,
           "views": {"rotation": pretext.Views(None, target, None)},
           "view_masks": {"rotation": rot_mask}}
  config = ml_collections.ConfigDict({"weight": 0.5, "mode": "all",
                                      "head_hidden": ()})
  total, metrics = pretext_mix.loss(
      (jax.tree.map(jnp.asarray, logits), {}), batch, class_weight=3.0,
      pretexts={"rotation": mix.Pretext(
          rotation, config, rotation.spec(config))})
  ce = lambda z, y: -_log_softmax(z)[np.arange(n), np.maximum(y, 0)]
  mean = lambda v, m: (v * m).sum() / m.sum()
  l_cls = mean(ce(logits["class"], label), class_mask)
  l_rot = mean(ce(logits["rotation"], target), rot_mask)
  np.testing.assert_allclose(total, 3.0 * l_cls + 0.5 * l_rot, rtol=1e-5)
  np.testing.assert_allclose(metrics["class_loss"],
                             [l_cls * class_mask.sum(), class_mask.sum()],
                             rtol=1e-5)
  np.testing.assert_allclose(metrics["rotation_loss"],
                             [l_rot * rot_mask.sum(), rot_mask.sum()],
                             rtol=1e-5)


def test_jigsaw_cuts_its_tiles_from_the_images_before_the_crop():
  """A crop's zero border would tell where a tile sits: jigsaw declares
  Spec.raw_images, so its tiles rebuild the batch image exactly while the
  class head's rows are cropped."""
  task, _ = _task("jigsaw")  # Crop padding 4, flips.
  cfg = helpers.load_config("multitask", "quick,pretext=jigsaw").pretext
  cfg.jigsaw.update(jitter=0, tile_size=0)
  task = task._replace(expand=functools.partial(
      task.expand.func, **{**task.expand.keywords, "pretexts": {
          "jigsaw": mix.Pretext(jigsaw, cfg.jigsaw,
                                        jigsaw.spec(cfg.jigsaw))}}))
  data = _data()
  data["image"] = np.maximum(data["image"], 1)  # No zero pixel of its own.
  out = jax.device_get(jax.jit(lambda b: task.expand(
      b, jax.random.key(0), True))(data))
  tiles = out["groups"]["jigsaw"].reshape(16, 4, 16, 16, 3)
  perms = np.asarray(jigsaw.permutations(4, 24, 0))
  for i in range(16):
    rebuilt = np.zeros((32, 32, 3), np.uint8)
    for slot, cell in enumerate(perms[out["views"]["jigsaw"].target[i]]):
      r, c = divmod(int(cell), 2)
      rebuilt[16 * r:16 * r + 16, 16 * c:16 * c + 16] = tiles[i, slot]
    np.testing.assert_array_equal(rebuilt, data["image"][i])
  assert (out["groups"]["image"] == 0).any()  # The class rows were cropped.


def _grads(task, state, data, params=None):
  batch = task.expand(data, jax.random.key(2), True)
  x = task.inputs(batch, jax.random.key(3), True)

  def loss_fn(params):
    outputs, _ = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, x, train=True,
        rngs={"dropout": jax.random.key(4)}, mutable=["batch_stats"])
    return task.loss(outputs, batch)[0]
  return jax.jit(jax.grad(loss_fn))(state.params if params is None else params)


def test_mixed_gradient_is_the_weighted_sum_of_single_pretext_gradients():
  """g(w_cls, w_rot, w_ex, w_jig) = g(class + rotation) + g(exemplar alone) +
  g(jigsaw alone), each single task built and differentiated on its own.

  Per-example normalisation and no dropout, so no example's loss depends on
  which other groups shared its backbone pass (BatchNorm would couple them).
  A batch without labeled examples gives the class head exactly zero
  gradient (no 0/0), the pretext heads theirs.
  """
  names = "rotation+exemplar+jigsaw"
  data = _data()
  mixed, heads = _task(names, 1.5, augment=False, rotation=2.0,
                       exemplar=0.5, jigsaw=0.7)
  state = _state(mixed, heads, data, dropout=False, norm="layer")
  got = _grads(mixed, state, data)
  parts = [_task("rotation", 1.5, augment=False, rotation=2.0),
           _task("exemplar", 0.0, augment=False, exemplar=0.5),
           _task("jigsaw", 0.0, augment=False, jigsaw=0.7)]
  want = jax.tree.map(jnp.zeros_like, state.params)
  for (task, part_heads) in parts:
    params = {k: v for k, v in state.params.items()
              if k == "backbone" or k[:-len("_head")] in part_heads}
    part_state = _state(task, part_heads, data, dropout=False, norm="layer")
    g = _grads(task, part_state, data, params)
    want = {k: jax.tree.map(jnp.add, v, g[k]) if k in g else v
            for k, v in want.items()}
  helpers.assert_trees_close(got, want, atol=2e-6)
  # Every part contributes: no head is left without gradient.
  for head in ("class_head", "rotation_head", "exemplar_head", "jigsaw_head"):
    assert np.abs(np.asarray(got[head]["out"]["kernel"])).max() > 0
  unlabeled = _grads(mixed, state, {**data, "labeled": np.zeros(16,
                                                                 np.float32)})
  for g in jax.tree.leaves(unlabeled["class_head"]):
    assert np.all(np.asarray(g) == 0)
  for head in ("rotation_head", "exemplar_head", "jigsaw_head"):
    assert np.abs(np.asarray(unlabeled[head]["out"]["kernel"])).max() > 0


def _steps_on_4_devices_equal_one_device(names, augment, pmap):
  """3 steps of the mix task for `names` on one device (jit), on the 4-device
  mesh (jit) and, with `pmap`, under pmap: the same state and metrics."""
  mesh = parallel.make_mesh()
  assert mesh.size == 4
  task, heads = _task(names, 2.0, augment=augment, exemplar_augment=augment,
                      **{n: 0.5 for n in names.split("+")})
  step = functools.partial(step_lib.train_step, task=task)
  eval_step = functools.partial(step_lib.eval_step, task=task)
  data = _data()
  state = _state(task, heads, data, dropout=augment)
  ref, ref_metrics = state, None
  for _ in range(3):
    ref, ref_metrics = jax.jit(step)(ref, data, jax.random.key(7))
  runs = [helpers.run_steps(parallel.Runner("jit", mesh, step, eval_step),
                            state, data)]
  if pmap:
    runs.append(helpers.run_steps(
        parallel.Runner("pmap", mesh, step, eval_step),
        _state(task, heads, data, axis_name="data", dropout=augment), data))
  for got, metrics in runs:
    # Sums in another order, which Adam's normalisation amplifies where a
    # gradient is near 0: after 3 steps one backbone weight in 512 of byol's
    # was 7.1e-5 away (AMD EPYC); an error of the step moves weights by
    # Adam's step size, 3e-3.
    helpers.assert_trees_close(got.params, ref.params, atol=2e-4)
    helpers.assert_trees_close(got.batch_stats, ref.batch_stats)
    helpers.assert_trees_close(got.method_state, ref.method_state, atol=5e-5)
    helpers.assert_trees_close(metrics, ref_metrics, atol=1e-4)


@pytest.mark.parametrize("names", ["rotation+exemplar+fixmatch", "byol",
                                   "dino"])
def test_each_pretext_step_on_4_devices_equals_one_device(names):
  """Per-device transforms, losses normalised by global counts (and
  exemplar's negatives gathered from every device) add up to one device's
  step, under jit and pmap; nothing random (pmap's draws differ per device
  by design). The tasks without a teacher share one mix, one compile: each
  one's loss metrics are compared on their own."""
  _steps_on_4_devices_equal_one_device(names, augment=False, pmap=True)


def test_random_views_on_4_devices_equal_one_device():
  """Crops, flips, RandAugment, Cutout, angles, jigsaw's permutations and
  tile offsets, and dropout drawn under jit on the 4-device mesh are one
  device's draws. (Jigsaw draws even without augmentation: not under pmap.)"""
  _steps_on_4_devices_equal_one_device("fixmatch+rotation+jigsaw",
                                       augment=True, pmap=False)
