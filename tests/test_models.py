"""Model registry, the seeds' core CNN, and the `norm` field of models."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import plugins
from ssl_jax.models import get_model


def _count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


def test_core_cnn_has_the_seeds_parameter_count():
  """SEEDS.md: 230,336 parameters without a classifier (Keras counts BN's
  moving statistics); a 10-way head adds 1024 * 10 + 10."""
  x = jnp.zeros((2, 32, 32, 3))
  features = get_model("core_cnn").init(jax.random.key(0), x, train=False)
  assert _count(features) == 230_336
  model = get_model("core_cnn", num_classes=10)
  variables = model.init(jax.random.key(0), x, train=False)
  assert _count(variables) == 230_336 + 10_250
  (logits, out), _ = model.apply(variables, x, train=True, mutable=[
      "batch_stats"], rngs={"dropout": jax.random.key(1)})
  assert logits.shape == (2, 10) and out["pre_logits"].shape == (2, 1024)
  assert out["block1"].shape == (2, 10, 10, 32)


@pytest.mark.parametrize("kind", plugins.names("norm"))
def test_core_cnn_honours_norm(kind):
  model = get_model("core_cnn", num_classes=10, features=(8, 16, 16),
                    dense=32, norm=kind)
  x = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
  variables = model.init(jax.random.key(1), x, train=False)
  norm_params = variables["params"].get("norm1", {})
  expected = {"batch": {"scale", "bias"}, "layer": {"scale", "bias"},
              "group": {"scale", "bias"}, "instance": {"scale", "bias"},
              "rms": {"scale"}, "none": set()}[kind]
  assert set(norm_params) == expected
  assert ("batch_stats" in variables) == (kind == "batch")
  # Each layer computes its own normalization of conv1's output.
  h = jax.nn.relu(jax.lax.conv_general_dilated(
      x, variables["params"]["conv1"]["kernel"], (1, 1), "VALID",
      dimension_numbers=("NHWC", "HWIO", "NHWC"))
                  + variables["params"]["conv1"]["bias"])
  h = np.asarray(h, np.float64)
  axes = {"batch": (0, 1, 2), "layer": (3,), "instance": (1, 2),
          "rms": (3,)}.get(kind)
  _, state = model.apply(variables, x, train=False, mutable=True,
                         capture_intermediates=True)
  got = np.asarray(state["intermediates"]["norm1"]["__call__"][0])
  if axes is not None:
    mean = 0.0 if kind == "rms" else h.mean(axes, keepdims=True)
    var = ((h - mean) ** 2).mean(axes, keepdims=True)
    if kind == "batch":  # Inference mode: the initial running statistics.
      mean, var = 0.0, 1.0
    np.testing.assert_allclose(got, (h - mean) / np.sqrt(var + 1e-5),
                               atol=1e-4)
  elif kind == "none":
    np.testing.assert_allclose(got, h, atol=1e-5)


def _resnet_param_count(stem, widths, sizes, channels=3, norm_params=2,
                        norm_stats=2):
  """Hand count: convs without bias, BN scale+bias (+ mean, var)."""
  bn = norm_params + norm_stats
  total = 9 * channels * stem + bn * stem
  c = stem
  for w, n in zip(widths, sizes):
    for j in range(n):
      total += 9 * c * w + bn * w + 9 * w * w + bn * w
      if c != w or j == 0:  # Every stage's first block downsamples.
        total += c * w + bn * w
      c = w
  return total


@pytest.mark.parametrize("widths,sizes", [((32, 64, 128), (1, 1, 1)),
                                          ((16, 16, 32), (2, 1, 2))])
def test_resnet_shapes_and_parameter_count(widths, sizes):
  x = jnp.zeros((2, 32, 32, 3))
  model = get_model("resnet", num_classes=10, stem_features=16,
                    features=widths, stage_sizes=sizes)
  variables = model.init(jax.random.key(0), x, train=False)
  expected = _resnet_param_count(16, widths, sizes)
  assert _count(variables) == expected + widths[-1] * 10 + 10
  (logits, out), _ = model.apply(variables, x, train=True,
                                 mutable=["batch_stats"])
  assert logits.shape == (2, 10)
  assert out["block1"].shape == (2, 16, 16, widths[0])
  assert out["block3"].shape == (2, 4, 4, widths[2])
  assert out["pre_logits"].shape == (2, widths[2])
