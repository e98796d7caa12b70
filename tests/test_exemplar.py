"""Exemplar pretext: copies against a NumPy crop search, losses against
float64 NumPy references, pmap against a single device."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import pretext
from ssl_jax.data import view_augment
from ssl_jax.pretext import exemplar

_LUMA = np.array([0.299, 0.587, 0.114])


def _cfg(**overrides):
  cfg = exemplar.get_config()
  cfg.update(overrides)
  return cfg


def _images(n=8, size=8, channels=3, seed=0):
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)


def _transform(cfg, images, rng, train):
  return jax.jit(functools.partial(exemplar.transform, cfg),
                 static_argnums=2)(images, rng, train)


def _all_crops(images, p):
  """(B, (2p+1)^2 * 2, H, W, C): every offset of the zero-padded image, both
  unflipped and mirrored, with the (dy, dx, flipped) of each."""
  _, h, w, _ = images.shape
  padded = np.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))
  crops, moves = [], []
  for dy in range(2 * p + 1):
    for dx in range(2 * p + 1):
      crop = padded[:, dy:dy + h, dx:dx + w]
      crops += [crop, crop[:, :, ::-1]]
      moves += [(dy, dx, False), (dy, dx, True)]
  return np.stack(crops, axis=1).astype(np.float32), moves


def test_config_and_head():
  cfg = exemplar.get_config()
  assert exemplar.spec(cfg).head == pretext.Head(128, (256,), 1)
  assert (cfg.copies, cfg.loss, cfg.temperature) == (2, "nt_xent", 0.5)
  assert "margin" not in cfg and exemplar.MARGIN == 0.5  # Triplet only.
  with pytest.raises(ValueError, match="copies must be >= 2"):
    exemplar.transform(_cfg(copies=1), _images(), jax.random.key(0), True)
  with pytest.raises(ValueError, match="'nt_xent' or 'triplet'"):
    exemplar.loss(_cfg(loss="hinge"), jnp.ones((4, 3)),
                  pretext.Views(None, jnp.array([0, 0, 1, 1]), None), jnp.ones(4))


def test_copies_are_crops_and_flips_of_their_own_image():
  images, p, v = _images(), 2, 3
  cfg = _cfg(copies=v, crop_padding=p, color_jitter=0.0, grayscale_prob=0.0)
  views = jax.device_get(_transform(cfg, images, jax.random.key(1), True))
  copies = views.images
  assert copies.dtype == np.float32 and copies.shape == (8 * v, 8, 8, 3)
  expected_source = np.repeat(np.arange(8), v)  # Example-major.
  np.testing.assert_array_equal(views.source, expected_source)
  np.testing.assert_array_equal(views.target, expected_source)
  assert views.source.dtype == views.target.dtype == np.int32

  crops, moves = _all_crops(images, p)
  # match[r, i, k]: copy r is exactly crop k of image i.
  match = (copies[:, None, None] == crops[None]).all(axis=(-3, -2, -1))
  found = set()
  for r, source in enumerate(expected_source):
    assert match[r, source].any(), f"copy {r} is no crop of image {source}"
    others = np.delete(match[r], source, axis=0)
    assert not others.any(), f"copy {r} is a crop of another image"
    found.add(moves[np.flatnonzero(match[r, source])[0]])
  # The draws vary: many offsets, both mirror states.
  assert len(found) > 10 and {m[2] for m in found} == {False, True}
  # Copies of one image differ (the same draw has chance 1/50 per pair).
  per_image = copies.reshape(8, v, -1)
  same = [np.array_equal(per_image[i, a], per_image[i, b])
          for i in range(8) for a in range(v) for b in range(a)]
  assert np.mean(same) < 0.25


def test_evaluation_copies_are_deterministic():
  images, cfg = _images(), _cfg()
  first = _transform(cfg, images, None, False).images
  again = _transform(cfg, images, None, False).images
  np.testing.assert_array_equal(first, again)
  train_a = _transform(cfg, images, jax.random.key(5), True).images
  train_b = _transform(cfg, images, jax.random.key(6), True).images
  assert not np.array_equal(train_a, train_b)


@pytest.mark.parametrize("grey", [0.0, 0.5, 1.0])
def test_jittered_copies_stay_in_range(grey):
  images = _images(16)
  cfg = _cfg(copies=2, color_jitter=0.8, grayscale_prob=grey)
  copies = np.asarray(_transform(cfg, images, jax.random.key(2), True)
                      .images)
  assert copies.dtype == np.float32 and copies.shape == (32, 8, 8, 3)
  assert np.isfinite(copies).all()
  assert copies.min() >= 0 and copies.max() <= 255
  equal_channels = np.all(copies == copies[..., :1], axis=(1, 2, 3))
  if grey == 1.0:
    assert equal_channels.all()
  elif grey == 0.0:
    assert not equal_channels.any()
  else:
    assert 0 < equal_channels.sum() < 32
  # Jitter moved values off the crop grid: not all pixel values are integers.
  assert not np.array_equal(copies, np.round(copies))


def _np_blend(a, b, factor):
  return np.clip(factor * a + (1 - factor) * b, 0, 255)


def test_colour_ops_match_numpy():
  images = _images(4).astype(np.float64)
  np.testing.assert_allclose(
      view_augment.grayscale(images.astype(np.float32)),
      np.repeat((images @ _LUMA)[..., None], 3, -1), atol=1e-3)
  factors = np.array([[0.6, 1.0, 1.4, 0.9], [1.3, 0.7, 1.0, 0.0],
                      [0.5, 1.5, 1.2, 1.0]])
  got = jax.jit(view_augment.adjust_colors)(images.astype(np.float32), *factors)
  for i, (b, c, s) in enumerate(factors.T):
    x = _np_blend(images[i], 0.0, b)  # torchvision's adjust_brightness.
    x = _np_blend(x, (x @ _LUMA).mean(), c)  # adjust_contrast.
    x = _np_blend(x, (x @ _LUMA)[..., None], s)  # adjust_saturation.
    np.testing.assert_allclose(got[i], x, atol=2e-3)


def _np_loss(kind, z, target, mask, temperature=0.5, margin=0.5):
  """(loss, loss sum, anchor count, correct): the definitions, in float64."""
  z = z.astype(np.float64)
  z = z / np.linalg.norm(z, axis=1, keepdims=True)
  valid = [i for i in range(len(z)) if mask[i]]
  total, count, correct = 0.0, 0, 0
  for i in valid:
    others = [j for j in valid if j != i]
    positives = [j for j in others if target[j] == target[i]]
    negatives = [j for j in others if target[j] != target[i]]
    if not positives:
      continue
    count += 1
    sim = {j: z[i] @ z[j] for j in others}
    if kind == "nt_xent":
      log_norm = np.log(sum(np.exp(sim[j] / temperature) for j in others))
      total -= np.mean([sim[j] / temperature - log_norm for j in positives])
    else:
      dist = {j: np.linalg.norm(z[i] - z[j]) for j in others}
      hardest = max(dist[j] for j in positives)
      nearest = min(dist[j] for j in negatives)
      total += max(0.0, margin + hardest - nearest)
    correct += target[max(others, key=sim.get)] == target[i]
  return total / max(count, 1), total, count, correct


def _loss(cfg, outputs, target, mask):
  return jax.jit(functools.partial(exemplar.loss, cfg))(
      outputs, pretext.Views(None, target, None), mask)


@pytest.mark.parametrize("kind", ["nt_xent", "triplet"])
@pytest.mark.parametrize("v", [2, 3])
def test_loss_matches_numpy(kind, v):
  b, dim = 6, 16
  rng = np.random.default_rng(v)
  target = np.repeat(np.arange(b), v).astype(np.int32)
  outputs = rng.normal(size=(b * v, dim)).astype(np.float32)
  # Pull copies together a little, so some nearest neighbours are positives.
  outputs += 0.8 * rng.normal(size=(b, 1, dim)).repeat(v, 1).reshape(b * v,
                                                                     dim)
  mask = np.ones(b * v, np.float32)
  mask[target == b - 1] = 0  # A padding image.
  mask[0] = 0  # One copy of image 0: with V=2 its other copy has no positive.
  outputs[mask == 0] = np.nan  # Padding rows may hold anything.
  cfg = _cfg(loss=kind, temperature=0.3, margin=0.4)
  expected, total, count, correct = _np_loss(
      kind, outputs, target, mask, cfg.temperature, cfg.margin)
  assert count == (b - 2) * v + (v - 1 if v > 2 else 0)
  got, metrics = _loss(cfg, outputs, target, mask)
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  np.testing.assert_allclose(metrics["loss"], [total, count], rtol=1e-5)
  np.testing.assert_array_equal(metrics["accuracy"], [correct, count])
  assert 0 < correct < count
  # Dropping the masked rows changes nothing.
  keep = mask > 0
  dropped, dropped_metrics = _loss(cfg, outputs[keep], target[keep],
                                   np.ones(keep.sum(), np.float32))
  np.testing.assert_allclose(dropped, got, rtol=1e-6)
  np.testing.assert_allclose(dropped_metrics["loss"], metrics["loss"],
                             rtol=1e-6)
  np.testing.assert_array_equal(dropped_metrics["accuracy"],
                                metrics["accuracy"])
  grads = jax.jit(jax.grad(lambda o: exemplar.loss(
      cfg, o, pretext.Views(None, target, None), mask)[0]))(outputs)
  assert np.isfinite(grads).all() and not np.asarray(grads)[~keep].any()


def test_all_padding_gives_zero_loss():
  zeros = jnp.zeros(4)
  got, metrics = _loss(_cfg(), jnp.ones((4, 3)), jnp.array([0, 0, 1, 1]),
                       zeros)
  assert float(got) == 0.0 and np.asarray(metrics["loss"]).tolist() == [0, 0]


@pytest.mark.parametrize("kind", ["nt_xent", "triplet"])
def test_pmap_matches_single_device(kind):
  devices, local_images, v, width, dim = 4, 2, 2, 5, 8
  n = local_images * v
  rng = np.random.default_rng(7)
  features = rng.normal(size=(devices * n, width)).astype(np.float32)
  weights = rng.normal(size=(width, dim)).astype(np.float32)
  mask = np.ones(devices * n, np.float32)
  mask[[1, 6, 7]] = 0
  global_target = np.repeat(np.arange(devices * local_images), v)
  # Each device numbers its own images from 0, as its transform does.
  local_target = np.tile(np.repeat(np.arange(local_images), v), devices)
  cfg = _cfg(loss=kind)

  def value_and_grads(w, x, target, m, axis_name):
    fn = lambda w, x: exemplar.loss(cfg, x @ w, pretext.Views(None, target, None), m,
                                    axis_name)
    return jax.value_and_grad(fn, argnums=(0, 1), has_aux=True)(w, x)

  (loss, metrics), (grad_w, grad_x) = jax.jit(
      functools.partial(value_and_grads, axis_name=None))(
          weights, features, global_target, mask)
  shard = lambda a: a.reshape((devices, n) + a.shape[1:])
  (dev_loss, dev_metrics), (dev_grad_w, dev_grad_x) = jax.pmap(
      functools.partial(value_and_grads, axis_name="d"), axis_name="d",
      in_axes=(None, 0, 0, 0))(weights, shard(features), shard(local_target),
                               shard(mask))
  np.testing.assert_allclose(np.sum(dev_loss), loss, rtol=1e-5)
  for name in ("loss", "accuracy"):
    np.testing.assert_allclose(np.sum(dev_metrics[name], 0), metrics[name],
                               rtol=1e-5)
  np.testing.assert_allclose(np.sum(dev_grad_w, 0), grad_w, atol=1e-5)
  np.testing.assert_allclose(np.reshape(dev_grad_x, grad_x.shape), grad_x,
                             atol=1e-5)
  assert np.abs(grad_w).max() > 1e-3  # Not trivially zero.
