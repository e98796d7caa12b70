"""im2col convolutions and reshape max-pooling against XLA's own ops."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.models import get_model
from ssl_jax.models import layers

from helpers import assert_trees_close


def _xla_conv(x, k, strides, padding):
  return jax.lax.conv_general_dilated(
      x, k, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("shape,kernel,strides,padding", [
    ((2, 32, 32, 3), (3, 3), (1, 1), "VALID"),
    ((2, 11, 9, 5), (3, 3), (1, 1), "SAME"),
    ((2, 11, 10, 4), (3, 3), (2, 2), "SAME"),  # Odd size: TF's uneven pad.
    ((2, 8, 8, 4), (1, 1), (2, 2), "SAME"),
    ((2, 9, 9, 2), (5, 3), (2, 1), "VALID"),
])
def test_im2col_conv_matches_xla_conv_and_its_gradients(shape, kernel,
                                                        strides, padding):
  rng = np.random.default_rng(0)
  x = rng.normal(size=shape).astype(np.float32)
  k = rng.normal(size=kernel + (shape[-1], 6)).astype(np.float32)
  ours = layers.im2col_conv(x, k, strides, padding)
  ref = _xla_conv(x, k, strides, padding)
  np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=1e-5)
  loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k, strides, padding)))
  assert_trees_close(jax.jit(jax.grad(loss(layers.im2col_conv), (0, 1)))(x, k),
                     jax.grad(loss(_xla_conv), (0, 1))(x, k), atol=1e-3)


def _numpy_pool(x, window, kind):
  """Reference: each output pixel reduces the in-image part of its window."""
  b, h, w, c = x.shape
  # SAME padding: the total padding splits with the extra pixel at the end.
  top = (-(-h // window) * window - h) // 2
  left = (-(-w // window) * window - w) // 2
  out = np.zeros((b, -(-h // window), -(-w // window), c), x.dtype)
  reduce = np.max if kind == "max" else np.mean
  for i in range(out.shape[1]):
    for j in range(out.shape[2]):
      r0, c0 = i * window - top, j * window - left
      patch = x[:, max(r0, 0):r0 + window, max(c0, 0):c0 + window]
      out[:, i, j] = reduce(patch, axis=(1, 2))
  return out


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("size,window", [(30, 3), (10, 2), (26, 3), (7, 2)])
def test_pool_matches_numpy_under_both_lowerings(size, window, kind):
  x = jax.random.normal(jax.random.key(0), (2, size, size, 3))
  ref = _numpy_pool(np.asarray(x), window, kind)
  for lowering in ("im2col", "xla"):
    np.testing.assert_allclose(layers.pool(x, window, kind, lowering), ref,
                               rtol=1e-6, atol=1e-6)
  # Without ties the max gradient (a 1 at each window's maximum) is unique.
  g = lambda lowering: jax.grad(
      lambda x: jnp.sum(layers.pool(x, window, kind, lowering) ** 2))(x)
  np.testing.assert_allclose(g("im2col"), g("xla"), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,kwargs", [
    ("core_cnn", {"num_classes": 10}),
    ("resnet", {"num_classes": 10, "features": (8, 16, 16)}),
])
def test_models_are_the_same_under_both_lowerings(name, kwargs):
  x = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
  models = [get_model(name, conv_lowering=lowering, **kwargs)
            for lowering in ("xla", "im2col")]
  variables = models[0].init(jax.random.key(1), x, train=False)
  assert jax.tree.map(jnp.shape, variables) == jax.tree.map(
      jnp.shape, models[1].init(jax.random.key(1), x, train=False))

  def grads(model):
    def loss(params):
      (logits, _), _ = model.apply(
          {**variables, "params": params}, x, train=True,
          mutable=["batch_stats"], rngs={"dropout": jax.random.key(2)})
      return jnp.sum(jax.nn.log_softmax(logits)[:, 0])
    return jax.jit(jax.value_and_grad(loss))(variables["params"])
  # Float sums in another order (and max-pool ties split differently),
  # amplified by BatchNorm on 4 images: 1e-3 of each array's scale.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(
      a, b, atol=1e-3 * np.abs(b).max()), grads(models[1]), grads(models[0]))


def test_unknown_lowering_is_an_error():
  with pytest.raises(ValueError, match="lowering"):
    layers.pool(jnp.zeros((1, 4, 4, 1)), 2, "max", "fast")


@pytest.mark.parametrize("size,kernel,strides,padding", [
    (9, 3, 1, "SAME"), (10, 3, 2, ((0, 1), (0, 1))), (11, 5, 2, "SAME"),
    (7, 5, 1, "VALID")])
def test_depthwise_conv_matches_xla(size, kernel, strides, padding):
  x = jax.random.normal(jax.random.key(0), (2, size, size, 6))
  convs = [layers.Conv(6, (kernel, kernel), strides, padding,
                       feature_group_count=6, lowering=lowering)
           for lowering in ("xla", "im2col")]
  variables = convs[0].init(jax.random.key(1), x)
  assert variables["params"]["kernel"].shape == (kernel, kernel, 1, 6)
  np.testing.assert_allclose(convs[1].apply(variables, x),
                             convs[0].apply(variables, x), atol=1e-5)
  grads = [jax.grad(lambda v: jnp.sum(jnp.sin(c.apply(v, x))))(variables)
           for c in convs]
  assert_trees_close(grads[1], grads[0], atol=1e-4)
