"""The Keras reference models are the same networks as ours (weights copied
over give the same outputs), so the benchmark compares like with like."""
import jax
import numpy as np

from ssl_jax import keras_models
from ssl_jax.models import get_model


def test_keras_core_cnn_matches_multihead():
  import keras  # pylint: disable=g-import-not-at-top
  km = keras_models.core_cnn(heads=(10, 4))
  rng = np.random.default_rng(0)
  for w in km.weights:
    # Positive variances; weights large enough that a swapped layer shows.
    w.assign(rng.uniform(0.5, 1.5, w.shape).astype(np.float32)
             if "variance" in w.path else
             rng.normal(0, 0.3, w.shape).astype(np.float32))
  kinds = lambda t: [l for l in km.layers if isinstance(l, t)]
  convs = kinds(keras.layers.Conv2D)
  norms = kinds(keras.layers.BatchNormalization)
  dense, class_head, rotation_head = kinds(keras.layers.Dense)
  params, stats = {}, {}
  for i, layer in enumerate(convs):
    kernel, bias = layer.get_weights()
    params[f"conv{i + 1}"] = {"kernel": kernel, "bias": bias}
  for name, layer in zip(["norm1", "norm2", "norm3", "norm_dense"], norms):
    scale, bias, mean, var = layer.get_weights()
    params[name] = {"scale": scale, "bias": bias}
    stats[name] = {"mean": mean, "var": var}
  params["dense"] = dict(zip(["kernel", "bias"], dense.get_weights()))
  head = lambda layer: {"out": dict(zip(["kernel", "bias"],
                                        layer.get_weights()))}
  variables = {"params": {"backbone": params, "class_head": head(class_head),
                          "rotation_head": head(rotation_head)},
               "batch_stats": {"backbone": stats}}
  model = get_model("multihead", num_classes=10, rotation_head=True,
                    head_dropout_rate=0.3, backbone_config={})
  x = rng.random((4, 32, 32, 3)).astype(np.float32)
  init = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
  assert jax.tree.map(np.shape, variables) == jax.tree.map(np.shape, init)
  ours, _ = model.apply(variables, x, train=False)
  theirs = km(x, training=False)
  for name, expected in zip(["class", "rotation"], theirs):
    expected = np.asarray(expected)
    np.testing.assert_allclose(ours[name], expected,
                               atol=1e-4 * np.abs(expected).max())
