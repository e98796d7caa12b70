"""Keras `keras.applications.EfficientNetB*` weights -> `ssl_jax` EfficientNet.

    python -m ssl_jax.tools.convert_keras --h5=efficientnetb0_notop.h5 --out=DIR \
        [--variant=b0] [--no_top]

Input convention. The Keras models start with Rescaling(1/255) and
Normalization layers (plus, only when built with weights='imagenet', a
Rescaling(1/sqrt(stddev))); the converted Flax model has none of them and
expects already normalized images, i.e. `keras_preprocess(pixels_0_255)`:

  * for the official ImageNet weights: (pixels / 255 - mean) / std with the
    usual ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225),
    i.e. `keras_preprocess(x)` with no Keras model;
  * to reproduce one particular Keras model exactly:
    `keras_preprocess(x, keras_model)`, which composes that model's own
    preprocessing layers (reading the Normalization mean/variance).

The quirk behind the first point (tensorflow/tensorflow#49930): the official
.h5 files store the *stddev* in the Normalization layer's `variance`, so
Normalization alone divides by sqrt(stddev); Keras compensates with the extra
Rescaling(1/sqrt(stddev)) layer, but only for weights='imagenet'. A Keras
model built with weights=None or weights=PATH and then loaded from the same
file divides by sqrt(stddev) only, which is not how the weights were trained.
"""
import argparse
import os
import re
from typing import Any

from flax import traverse_util
import jax
import jax.numpy as jnp
import keras
import numpy as np

from ssl_jax.data import augment
from ssl_jax.models import efficientnet
from ssl_jax.train import checkpoints

# The official weights' input statistics (see the module docstring).
IMAGENET_MEAN = augment.IMAGENET_MEAN
IMAGENET_STD = augment.IMAGENET_STD

# Keras variable name -> (Flax collection, Flax variable name).
_VARIABLES = {
    "kernel": ("params", "kernel"),
    "bias": ("params", "bias"),
    "gamma": ("params", "scale"),
    "beta": ("params", "bias"),
    "moving_mean": ("batch_stats", "mean"),
    "moving_variance": ("batch_stats", "var"),
}


def _module_path(layer_name: str) -> tuple[str, ...]:
  """'block2a_dwconv' -> ('block2a', 'dwconv'); 'top_bn' -> ('top_bn',)."""
  m = re.fullmatch(r"(block\d+[a-z])_(\w+)", layer_name)
  return m.groups() if m else (layer_name,)


def _keras_variant(keras_model) -> str:
  m = re.search(r"efficientnet-?(b\d)", keras_model.name.lower())
  if not m:
    raise ValueError(f"Cannot tell the EfficientNet variant from the Keras "
                     f"model name {keras_model.name!r}; pass variant=.")
  return m.group(1)


def _numpy(variable) -> np.ndarray:
  return np.asarray(keras.ops.convert_to_numpy(variable))


def keras_to_flax(keras_model, variant: str | None = None) -> dict[str, Any]:
  """{'params', 'batch_stats'} for `EfficientNet(variant, include_top=...)`.

  Layers are matched by their Keras names. Raises ValueError listing every
  Flax variable without a Keras counterpart, every Keras variable left over
  and every shape mismatch. The Normalization layer is not converted (see
  `keras_preprocess`).
  """
  variant = variant or _keras_variant(keras_model)
  layer_names = {layer.name for layer in keras_model.layers}
  include_top = "predictions" in layer_names
  num_classes = (keras_model.get_layer("predictions").units if include_top
                 else 1000)
  expected = efficientnet.variable_shapes(variant, include_top, num_classes)

  flat, leftover, mismatched = {}, [], []
  for layer in keras_model.layers:
    if isinstance(layer, keras.layers.Normalization):
      continue
    for w in layer.weights:
      value = _numpy(w)
      if isinstance(layer, keras.layers.DepthwiseConv2D):
        value = value.transpose(0, 1, 3, 2)  # (h, w, C, 1) -> (h, w, 1, C).
      collection, name = _VARIABLES.get(w.name, (None, None))
      key = (collection,) + _module_path(layer.name) + (name,)
      if collection is None or key not in expected:
        leftover.append(w.path)
      elif value.shape != expected[key]:
        mismatched.append(f"{w.path}: Keras {value.shape} vs Flax "
                          f"{'/'.join(key)} {expected[key]}")
      else:
        flat[key] = value
  missing = sorted("/".join(k) for k in expected if k not in flat)
  if missing or leftover or mismatched:
    raise ValueError(
        f"Keras model {keras_model.name!r} does not match EfficientNet("
        f"variant={variant!r}, include_top={include_top}):\n"
        f"  Flax variables without Keras weights: {missing}\n"
        f"  Keras weights without Flax variables: {leftover}\n"
        f"  shape mismatches: {mismatched}")
  return traverse_util.unflatten_dict(flat)


def preprocess_affine(keras_model) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel (scale, offset) so that the Keras model's input layers are
  `x * scale + offset`, composed from its Rescaling/Normalization layers."""
  scale, offset = np.ones(3), np.zeros(3)
  for layer in keras_model.layers:
    if layer.name == "stem_conv_pad":
      return scale.astype(np.float32), offset.astype(np.float32)
    if isinstance(layer, keras.layers.Rescaling):
      s, o = np.asarray(layer.scale, np.float64), np.asarray(layer.offset)
      scale, offset = scale * s, offset * s + o
    elif isinstance(layer, keras.layers.Normalization):
      # What Normalization.call divides by (the finalized mean/variance).
      mean = _numpy(layer.mean).reshape(-1).astype(np.float64)
      std = np.maximum(np.sqrt(_numpy(layer.variance).reshape(-1)),
                       keras.backend.epsilon())
      scale, offset = scale / std, (offset - mean) / std
    elif not isinstance(layer, keras.layers.InputLayer):
      raise ValueError(f"Unexpected preprocessing layer {layer.name!r}.")
  raise ValueError("No 'stem_conv_pad' layer: not a Keras EfficientNet.")


def keras_preprocess(images, keras_model=None) -> jax.Array:
  """0-255 RGB images (any dtype, NHWC) -> the converted model's input.

  Without `keras_model`: the official ImageNet convention, what
  EfficientNetB*(weights='imagenet') computes. With it: exactly that Keras
  model's preprocessing layers.
  """
  if keras_model is None:
    scale = 1 / (255 * np.asarray(IMAGENET_STD))
    offset = -np.asarray(IMAGENET_MEAN) / np.asarray(IMAGENET_STD)
  else:
    scale, offset = preprocess_affine(keras_model)
  return (jnp.asarray(images, jnp.float32) * jnp.asarray(scale, jnp.float32)
          + jnp.asarray(offset, jnp.float32))


def load_h5(path: str, variant: str | None = None,
            include_top: bool | None = None,
            num_classes: int = 1000) -> dict[str, Any]:
  """Converts a Keras EfficientNet weights file (official legacy `.h5` such as
  efficientnetb0_notop.h5, or a Keras 3 `.weights.h5`).

  variant defaults to the one in an official file name; include_top to
  whether the name lacks '_notop'.
  """
  name = os.path.basename(path).lower()
  if variant is None:
    m = re.search(r"efficientnet-?(b\d)", name)
    if not m:
      raise ValueError(f"Cannot tell the variant from {path!r}; pass it.")
    variant = m.group(1)
  if include_top is None:
    include_top = "_notop" not in name
  efficientnet.efficientnet_variant(variant)  # Fails clearly if unknown.
  suffix = variant.lower().removeprefix("efficientnet").strip("-_").upper()
  keras_model = getattr(keras.applications, f"EfficientNet{suffix}")(
      weights=None, include_top=include_top, classes=num_classes)
  keras_model.load_weights(path)
  return keras_to_flax(keras_model, suffix.lower())


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--h5", required=True, help="Keras weights file.")
  parser.add_argument("--out", required=True, help="Checkpoint directory.")
  parser.add_argument("--variant", help="b0..b7 (default: from file name).")
  parser.add_argument("--no_top", action="store_true",
                      help="The file has no classifier (default: whether its "
                      "name contains '_notop').")
  parser.add_argument("--num_classes", type=int, default=1000)
  args = parser.parse_args(argv)
  variables = load_h5(args.h5, args.variant, False if args.no_top else None,
                      args.num_classes)
  checkpoints.write(args.out, variables)
  n = sum(x.size for x in jax.tree.leaves(variables["params"]))
  print(f"Wrote {n:,} parameters to {args.out}; inputs are "
        f"keras_preprocess(0-255 RGB).")


if __name__ == "__main__":
  main()
