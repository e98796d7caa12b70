"""EfficientNet B0..B7 (Tan & Le, 2019), a Flax port of keras.applications,
and EfficientNet-Lite0..4, the same network for mobile accelerators.

Layer for layer the Keras 3 `keras.applications.EfficientNetB*` graph, with
the same module names (`stem_conv`, `block2a/dwconv`, `top_bn`,
`predictions`, ...) so `ssl_jax.tools.convert_keras` copies weights 1:1. The
Keras model's input preprocessing (Rescaling + Normalization) is NOT part of
this model: it takes already normalized NHWC float images, see
`ssl_jax.tools.convert_keras.keras_preprocess`.

Lite (tensorflow/tpu models/official/efficientnet/lite/
efficientnet_lite_builder.py) differs only by its `Variant` flags: no
squeeze-and-excite, ReLU6 instead of swish, and the stem (32 filters), the
head (1280) and the first and last stages' repeats left unscaled. Padding
is TF's 'SAME' in both, so one definition serves both families and the
PyTorch port's weights (`ssl_jax.tools.convert_torch`).
"""
import functools
import math
from typing import Any, NamedTuple

from flax import traverse_util
import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.models import layers
from ssl_jax.models import norms


class Variant(NamedTuple):
  width: float  # Channel multiplier.
  depth: float  # Block repeats multiplier.
  resolution: int  # Default input size.
  dropout: float  # Dropout before the classifier.
  squeeze_excite: bool = True  # Squeeze-and-excite in every block.
  activation: str = "swish"  # A key of ACTIVATIONS.
  fixed_stem_head: bool = False  # Lite: stem, head, first/last stage unscaled.


# Exactly the arguments keras.applications.EfficientNetB* pass.
VARIANTS = {
    "b0": Variant(1.0, 1.0, 224, 0.2),
    "b1": Variant(1.0, 1.1, 240, 0.2),
    "b2": Variant(1.1, 1.2, 260, 0.3),
    "b3": Variant(1.2, 1.4, 300, 0.3),
    "b4": Variant(1.4, 1.8, 380, 0.4),
    "b5": Variant(1.6, 2.2, 456, 0.4),
    "b6": Variant(1.8, 2.6, 528, 0.5),
    "b7": Variant(2.0, 3.1, 600, 0.5),
}

# efficientnet_lite_builder.py's efficientnet_lite_params and flags.
_lite = lambda *args: Variant(*args, squeeze_excite=False, activation="relu6",
                              fixed_stem_head=True)
LITE_VARIANTS = {
    "lite0": _lite(1.0, 1.0, 224, 0.2),
    "lite1": _lite(1.0, 1.1, 240, 0.2),
    "lite2": _lite(1.1, 1.2, 260, 0.3),
    "lite3": _lite(1.2, 1.4, 280, 0.3),
    "lite4": _lite(1.4, 1.8, 300, 0.3),
}

ACTIVATIONS = {"swish": nn.swish, "relu6": nn.relu6}


class StageArgs(NamedTuple):
  kernel_size: int
  repeats: int
  filters_in: int
  filters_out: int
  expand_ratio: int
  strides: int
  se_ratio: float = 0.25


# Keras's DEFAULT_BLOCKS_ARGS (B0 before scaling), one entry per stage.
STAGES = (
    StageArgs(3, 1, 32, 16, 1, 1),
    StageArgs(3, 2, 16, 24, 6, 2),
    StageArgs(5, 2, 24, 40, 6, 2),
    StageArgs(3, 3, 40, 80, 6, 2),
    StageArgs(5, 3, 80, 112, 6, 1),
    StageArgs(5, 4, 112, 192, 6, 2),
    StageArgs(3, 1, 192, 320, 6, 1),
)


def efficientnet_variant(name: str) -> Variant:
  """The Variant 'b0'..'b7', 'lite0'..'lite4', 'EfficientNetB0' or
  'efficientnet-lite0' names."""
  key = name.lower().removeprefix("efficientnet").strip("-_")
  known = {**VARIANTS, **LITE_VARIANTS}
  if key not in known:
    raise ValueError(f"Unknown EfficientNet variant {name!r}; "
                     f"known: {sorted(known)}.")
  return known[key]


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
  """Keras's round_filters: scale by width, round to a multiple of divisor."""
  filters *= width
  new_filters = max(divisor, int(filters + divisor / 2) // divisor * divisor)
  # Rounding down may not lose more than 10%.
  if new_filters < 0.9 * filters:
    new_filters += divisor
  return int(new_filters)


def round_repeats(repeats: int, depth: float) -> int:
  return int(math.ceil(depth * repeats))


def correct_pad(size: tuple[int, int], kernel_size: int):
  """Keras's imagenet_utils.correct_pad: the ZeroPadding2D of stride-2 convs.

  For a known input size this equals 'SAME' (the odd pixel goes bottom/right).
  Keras models with unknown (None) spatial input size assume even sizes and
  so differ on odd inputs; the parity tests use fixed sizes.
  """
  c = kernel_size // 2
  return tuple((c - (1 - s % 2), c) for s in size)


class MBConv(nn.Module):
  """Inverted residual block, squeeze-and-excite if se_ratio > 0 (Keras's
  `block`)."""
  filters_in: int
  filters_out: int
  kernel_size: int
  strides: int
  expand_ratio: int
  se_ratio: float
  drop_rate: float
  norm: Any  # Constructor from norms.norm_layer.
  activation: Any = nn.swish
  dtype: Any = jnp.float32
  conv_lowering: str = "auto"

  @nn.compact
  def __call__(self, inputs, train: bool):
    conv = functools.partial(layers.Conv, dtype=self.dtype,
                             lowering=self.conv_lowering)
    filters = self.filters_in * self.expand_ratio
    x = inputs
    if self.expand_ratio != 1:
      x = conv(filters, (1, 1), use_bias=False, name="expand_conv")(x)
      x = self.activation(self.norm(name="expand_bn")(x))

    k = self.kernel_size
    pad = (correct_pad(x.shape[1:3], k) if self.strides == 2 else "SAME")
    x = conv(filters, (k, k), strides=self.strides, padding=pad,
             feature_group_count=filters, use_bias=False, name="dwconv")(x)
    x = self.activation(self.norm(name="bn")(x))

    if 0 < self.se_ratio <= 1:
      # The bottleneck is a fraction of the block's *input* filters.
      filters_se = max(1, int(self.filters_in * self.se_ratio))
      se = jnp.mean(x, axis=(1, 2), keepdims=True)
      se = self.activation(conv(filters_se, (1, 1), name="se_reduce")(se))
      se = nn.sigmoid(conv(filters, (1, 1), name="se_expand")(se))
      x = x * se

    x = conv(self.filters_out, (1, 1), use_bias=False,
             name="project_conv")(x)
    x = self.norm(name="project_bn")(x)
    if self.strides == 1 and self.filters_in == self.filters_out:
      if self.drop_rate > 0:
        # Stochastic depth: drop the whole residual branch per example.
        x = nn.Dropout(self.drop_rate, broadcast_dims=(1, 2, 3),
                       deterministic=not train)(x)
      x = x + inputs
    return x


class EfficientNet(norms.NormedModel):
  """EfficientNet; compound scaling from `variant` unless overridden.

  Attributes:
    variant: 'b0'..'b7' or 'lite0'..'lite4'; supplies the defaults of the
      `None` fields below and the Lite flags (see `Variant`).
    num_classes: classifier size (with `include_top`).
    width_coefficient: channel multiplier (None: the variant's).
    depth_coefficient: repeats multiplier (None: the variant's).
    dropout_rate: dropout before the classifier (None: the variant's,
      0.2 for b0/b1 as in Keras).
    drop_connect_rate: stochastic depth rate of the last block; block b of
      n drops with rate drop_connect_rate * b / n.
    depth_divisor: channel counts are multiples of this.
    include_top: add dropout + Dense(num_classes) and return logits.
    pooling: 'avg' | 'max' | None (return the final feature map; only
      without top, which, as in Keras, always average-pools).
    norm, norm_momentum, norm_epsilon, num_groups, axis_name,
      conv_lowering: see `ssl_jax.models.norms.NormedModel` (Keras's BatchNorm
      defaults here: momentum 0.99, epsilon 1e-3).
    dtype: computation dtype, 'float32' or 'bfloat16' (see
      `ssl_jax.models.norms.NormedModel`; parameters stay float32, logits are
      float32).
  """
  variant: str = "b0"
  num_classes: int = 1000
  width_coefficient: float | None = None
  depth_coefficient: float | None = None
  dropout_rate: float | None = None
  drop_connect_rate: float = 0.2
  depth_divisor: int = 8
  include_top: bool = True
  pooling: str | None = "avg"
  norm_momentum: float = 0.99
  norm_epsilon: float = 1e-3

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False):
    """Returns (logits | pooled features | feature map, intermediates).

    intermediates: 'stem', 'stage1'..'stage7' (last block output of each
    stage), 'pre_logits' (the top features, average pooled; max pooled with
    pooling='max' and no top).
    """
    if self.pooling not in ("avg", "max", None):
      raise ValueError(f"pooling must be 'avg', 'max' or None, "
                       f"got {self.pooling!r}.")
    v = efficientnet_variant(self.variant)
    pick = lambda value, default: default if value is None else value
    width = pick(self.width_coefficient, v.width)
    depth = pick(self.depth_coefficient, v.depth)
    dropout = pick(self.dropout_rate, v.dropout)
    filters = lambda f: round_filters(f, width, self.depth_divisor)
    fixed = lambda f: f if v.fixed_stem_head else filters(f)
    act = ACTIVATIONS[v.activation]
    dtype = self.compute_dtype
    norm = self.norm_layer(train)
    conv = functools.partial(layers.Conv, dtype=dtype,
                             lowering=self.conv_lowering)
    out = {}

    x = conv(fixed(32), (3, 3), strides=2,
             padding=correct_pad(x.shape[1:3], 3), use_bias=False,
             name="stem_conv")(x)
    x = act(norm(name="stem_bn")(x))
    out["stem"] = x

    repeats = [s.repeats if v.fixed_stem_head and i in (0, len(STAGES) - 1)
               else round_repeats(s.repeats, depth)
               for i, s in enumerate(STAGES)]
    total = float(sum(repeats))
    b = 0
    for i, s in enumerate(STAGES):
      # The channels arriving, not filters(s.filters_in): Lite's fixed stem
      # feeds 32 whatever the width.
      f_in, f_out = x.shape[-1], filters(s.filters_out)
      for j in range(repeats[i]):
        # Only a stage's first block changes stride and channels.
        x = MBConv(f_in if j == 0 else f_out, f_out, s.kernel_size,
                   s.strides if j == 0 else 1, s.expand_ratio,
                   s.se_ratio if v.squeeze_excite else 0.0,
                   self.drop_connect_rate * b / total, norm, act, dtype,
                   self.conv_lowering,
                   name=f"block{i + 1}{chr(j + 97)}")(x, train)
        b += 1
      out[f"stage{i + 1}"] = x

    x = conv(fixed(1280), (1, 1), use_bias=False, name="top_conv")(x)
    x = act(norm(name="top_bn")(x))
    max_pool = self.pooling == "max" and not self.include_top
    pooled = (jnp.max if max_pool else jnp.mean)(x, axis=(1, 2))
    out["pre_logits"] = pooled
    if not self.include_top:
      return (x if self.pooling is None else pooled), out
    x = nn.Dropout(dropout, deterministic=not train)(pooled)
    # Logits: Keras's classifier additionally applies softmax.
    x = layers.Dense(self.num_classes, dtype=dtype, name="predictions")(x)
    return x.astype(jnp.float32), out


def flops_and_params(variant: str = "b0", resolution: int | None = None,
                     batch_size: int = 1) -> dict[str, float]:
  """Inference FLOPs (XLA cost analysis) and variable counts of a variant.

  resolution defaults to the variant's. 'params' are the trainable
  parameters; Keras's count_params() additionally counts 'batch_stats' and
  the 7 variables of its input Normalization layer.
  """
  model = EfficientNet(variant=variant)
  res = resolution or efficientnet_variant(variant).resolution
  x = jax.ShapeDtypeStruct((batch_size, res, res, 3), jnp.float32)
  variables = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros(x.shape), train=False))
  apply = jax.jit(lambda v, x: model.apply(v, x, train=False)[0])
  cost = apply.lower(variables, x).compile().cost_analysis()
  if isinstance(cost, (list, tuple)):  # Older JAX: one dict per computation.
    cost = cost[0]
  count = lambda tree: sum(math.prod(a.shape) for a in jax.tree.leaves(tree))
  return {"flops": float(cost["flops"]), "params": count(variables["params"]),
          "batch_stats": count(variables["batch_stats"])}


def variable_shapes(variant: str, include_top: bool,
                    num_classes: int = 1000) -> dict[tuple, tuple]:
  """{(collection, module, ..., name): shape} of a model's variables, without
  computing them: what weight converters map a checkpoint onto."""
  model = EfficientNet(variant=variant, include_top=include_top,
                       num_classes=num_classes)
  template = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
  return {k: v.shape for k, v in traverse_util.flatten_dict(template).items()}
