"""The Keras reference models are the same networks as ours (weights copied
over give the same outputs), so the benchmark compares like with like."""
import jax
import numpy as np
import pytest

from ssl_jax.models import get_model
from ssl_jax.models import keras_reference
from ssl_jax.models.heads import HeadSpec


# The seeds' core CNN; their full-data baseline (configs/cnn.py); a searched
# variant with average pools; the 7x7 ablation.
FAMILY = [
    {},
    {"pool_sizes": (2, 2, 2), "convs_per_block": 2, "padding": "SAME",
     "dense": 128},
    {"features": (32, 64, 96, 128), "pool_sizes": (2, 2, 2, 2),
     "pool_types": ("avg", "max", "avg", "max"), "padding": "SAME",
     "dense": 64},
    {"pool_sizes": (2, 2, 2), "kernel_size": 7, "padding": "SAME",
     "dense": 128},
]


@pytest.mark.parametrize("fields", FAMILY)
def test_keras_cnn_family_matches_multihead(fields):
  import keras  # pylint: disable=g-import-not-at-top
  km = keras_reference.core_cnn(heads=(10, 4), **fields)
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
  per_block = fields.get("convs_per_block", 1)
  suffixes = [f"{i // per_block + 1}" + (f"_{i % per_block + 1}"
                                         if i % per_block else "")
              for i in range(len(convs))]
  for suffix, layer in zip(suffixes, convs):
    kernel, bias = layer.get_weights()
    params[f"conv{suffix}"] = {"kernel": kernel, "bias": bias}
  for name, layer in zip([f"norm{s}" for s in suffixes] + ["norm_dense"],
                         norms):
    scale, bias, mean, var = layer.get_weights()
    params[name] = {"scale": scale, "bias": bias}
    stats[name] = {"mean": mean, "var": var}
  params["dense"] = dict(zip(["kernel", "bias"], dense.get_weights()))
  head = lambda layer: {"out": dict(zip(["kernel", "bias"],
                                        layer.get_weights()))}
  variables = {"params": {"backbone": params, "class_head": head(class_head),
                          "rotation_head": head(rotation_head)},
               "batch_stats": {"backbone": stats}}
  heads = {"class": HeadSpec(10), "rotation": HeadSpec(4)}
  model = get_model("multihead", {"heads": heads}, head_dropout_rate=0.3,
                    backbone_config=fields)
  x = rng.random((4, 32, 32, 3)).astype(np.float32)
  init = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
  assert jax.tree.map(np.shape, variables) == jax.tree.map(np.shape, init)
  ours, _ = model.apply(variables, x, train=False)
  theirs = km(x, training=False)
  for name, expected in zip(["class", "rotation"], theirs):
    expected = np.asarray(expected)
    np.testing.assert_allclose(ours[name], expected,
                               atol=1e-4 * np.abs(expected).max())
