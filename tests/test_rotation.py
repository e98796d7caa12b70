"""Rotation batches: np.rot90 semantics, alignment under sharding."""
import jax
from jax.sharding import NamedSharding, PartitionSpec as P
import numpy as np
import pytest

from ssl_jax.pretext import mix
from ssl_jax.pretext import rotation
from ssl_jax.tasks import pretext_mix
from ssl_jax.train import parallel

import helpers


def _images(n=8, size=5):
  """Distinct, asymmetric images: no rotation of one equals another's."""
  rng = np.random.default_rng(0)
  return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_each_label_turns_the_image_as_np_rot90():
  images = _images()
  # A single marked pixel: the direction of the turn is unambiguous.
  marked = np.zeros((1, 4, 4, 1), np.uint8)
  marked[0, 0, 3, 0] = 1  # Top right.
  expected_corner = {0: (0, 3), 1: (0, 0), 2: (3, 0), 3: (3, 3)}
  rotated, labels = jax.jit(rotation.all_rotations)(marked)
  for k in range(4):
    assert tuple(np.argwhere(np.asarray(rotated[k])[..., 0])[0]) == (
        expected_corner[k])
  rotated, labels = jax.jit(rotation.all_rotations)(images)
  rotated, labels = np.asarray(rotated), np.asarray(labels)
  for row in range(len(labels)):
    np.testing.assert_array_equal(
        rotated[row], np.rot90(images[row // 4], labels[row]))
  assert labels.tolist() == [0, 1, 2, 3] * len(images)
  k = np.array([3, 0, 2, 1, 1, 2, 0, 3])
  turned = np.asarray(jax.jit(rotation.rotate)(images, k))
  for i in range(len(images)):
    np.testing.assert_array_equal(turned[i], np.rot90(images[i], k[i]))


def test_non_square_images_are_refused():
  wide = np.zeros((2, 4, 6, 3), np.uint8)
  for fn in (rotation.all_rotations,
             lambda x: rotation.rotate(x, np.zeros(2, np.int32))):
    with pytest.raises(ValueError, match=r"square images, got \(4, 6\)"):
      fn(wide)


def test_random_rotations_match_their_labels():
  images = _images(64)
  turned, k = jax.jit(rotation.random_rotations)(jax.random.key(3), images)
  turned, k = np.asarray(turned), np.asarray(k)
  assert set(k.tolist()) == {0, 1, 2, 3}
  for i in range(len(images)):
    np.testing.assert_array_equal(turned[i], np.rot90(images[i], k[i]))


def _pretexts(mode):
  cfg = rotation.get_config()
  cfg.mode = mode
  return {"rotation": mix.Pretext(rotation, cfg, rotation.spec(cfg))}


def test_expanded_batch_stays_aligned_when_sharded():
  """Each rotated row keeps its own label, masks and rotation, on 4 devices."""
  assert jax.device_count() == 4
  images = _images(8)
  batch = {"image": images, "label": np.arange(8, dtype=np.int32),
           "labeled": np.array([1, 0] * 4, np.float32)}
  mesh = parallel.make_mesh()
  sharded = jax.device_put(batch, NamedSharding(mesh, P(parallel.AXIS)))
  for mode in ("all", "random"):
    pretexts = _pretexts(mode)
    class_from = mix.class_group(pretexts)
    # 'all' routes the class head to the 0-degree rows: no extra pass.
    assert class_from == {"all": "rotation", "random": "image"}[mode]
    expand = jax.jit(lambda b, r, p=pretexts, c=class_from: pretext_mix.expand(
        b, r, True, pretexts=p, class_from=c))
    out = jax.device_get(expand(sharded, jax.random.key(1)))
    views = out["views"]["rotation"]
    rotated = out["groups"]["rotation"]
    for row in range(len(rotated)):
      i = views.source[row]
      np.testing.assert_array_equal(rotated[row],
                                    np.rot90(images[i], views.target[row]))
    assert out["view_masks"]["rotation"].sum() == len(rotated)
    if mode == "all":  # Class loss: labeled and unrotated rows only.
      assert len(rotated) == 32 and out["class_mask"].sum() == 4
      for row in np.flatnonzero(out["class_mask"]):
        assert views.target[row] == 0
        assert out["label"][row] == views.source[row]
        assert batch["labeled"][views.source[row]] == 1
    else:  # The batch itself is the class head's group.
      np.testing.assert_array_equal(out["groups"]["image"], images)
      np.testing.assert_array_equal(out["class_mask"], batch["labeled"])


def test_flips_happen_before_rotations():
  """After the whole input path, each row is rot90(x or fliplr(x), label).

  Flipping after rotating would show 90 degrees as 270 of the mirror image:
  the label would be wrong for half of the quarter turns.
  """
  config = helpers.load_config("multitask")
  config.input.augment.crop_padding = 0
  config.input.augment.flip = True
  images = _images(16)
  batch = {"image": images, "label": np.arange(16, dtype=np.int32)}
  for mode in ("all", "random"):
    config.pretext.rotation.mode = mode
    task, _ = pretext_mix.make(config, np.zeros(3, np.float32),
                               np.ones(3, np.float32), 10, 1)

    @jax.jit
    def model_input(b, rng, task=task):
      expanded = task.expand(b, jax.random.fold_in(rng, 1), True)
      return task.inputs(expanded, rng, True), expanded
    x, out = jax.device_get(model_input(batch, jax.random.key(5)))
    x, views = x["rotation"], out["views"]["rotation"]
    flipped = 0
    for row in range(len(x)):
      i, k = views.source[row], views.target[row]
      rotations = [np.rot90(img, k) / 255.0
                   for img in (images[i], images[i][:, ::-1])]
      match = [np.allclose(x[row], r, atol=1e-6) for r in rotations]
      assert any(match), (mode, row)
      flipped += match[1] and not match[0]
    assert 0 < flipped < len(x)  # Flips did happen, not to every row.
