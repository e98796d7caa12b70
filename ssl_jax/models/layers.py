"""Convolution and pooling lowered for speed on XLA:CPU; Dense and Conv
adding their bias in float32 (exact bias gradients under bfloat16).

On CPU, XLA's convolutions (and their gradients) run far below the machine's
matmul speed for the small images here, and max-pool gradients lower to a
slow select-and-scatter. Measured on the 2-core dev machine (batch 128,
forward + kernel gradient): the core CNN's 3x3 convolutions take 22, 7.8 and
1.3 ms as XLA convolutions and 10.8, 3.5 and 0.8 ms as im2col (the k*k
shifted slices concatenated, then one matmul); a 3x3/3 max pool's forward +
backward takes 41 ms with `nn.max_pool` and 5.4 ms as a reshape + max.
Depthwise 3x3 and 5x5 convolutions of EfficientNet-B0 (batch 32) are 4-20x
faster as shifted multiply-adds, 1x1 convolutions ~5x as matmuls.
`experiments/bench.py` measures whole steps. On GPU/TPU the native
convolution is used.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def _same_pads(size: int, window: int, stride: int) -> tuple[int, int]:
  """TF/XLA 'SAME' padding (more at the end when odd)."""
  out = -(-size // stride)
  total = max((out - 1) * stride + window - size, 0)
  return total // 2, total - total // 2


def _windows(x, kernel_size, strides, padding):
  """The k*k shifted, strided views of padded `x` that a convolution sums:
  [(i, j, x[:, i::sh, j::sw] cut to the output size)] in (i, j) order."""
  (kh, kw), (sh, sw) = kernel_size, strides
  if padding == "SAME":
    pads = (_same_pads(x.shape[1], kh, sh), _same_pads(x.shape[2], kw, sw))
  elif padding == "VALID":
    pads = ((0, 0), (0, 0))
  elif isinstance(padding, str):
    raise ValueError(f"padding must be 'SAME', 'VALID' or ((lo, hi), (lo, "
                     f"hi)), got {padding!r}.")
  else:
    pads = tuple(tuple(p) for p in padding)
  x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
  oh, ow = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
  return [(i, j, x[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw])
          for i in range(kh) for j in range(kw)]


def im2col_conv(x: jax.Array, kernel: jax.Array, strides=(1, 1),
                padding="VALID") -> jax.Array:
  """`lax.conv_general_dilated` (NHWC, HWIO) as shifted slices + one matmul."""
  kh, kw, cin, cout = kernel.shape
  cols = jnp.concatenate([w for _, _, w in _windows(x, (kh, kw), strides,
                                                     padding)], axis=-1)
  return cols @ kernel.reshape(kh * kw * cin, cout)


def depthwise_conv(x: jax.Array, kernel: jax.Array, strides=(1, 1),
                   padding="VALID") -> jax.Array:
  """A depthwise convolution (kernel (kh, kw, 1, C)) as a sum of shifted
  slices times per-channel weights: one fused elementwise loop on CPU."""
  return sum(w * kernel[i, j, 0] for i, j, w in
             _windows(x, kernel.shape[:2], strides, padding))


def use_im2col(lowering: str) -> bool:
  if lowering not in ("auto", "im2col", "xla"):
    raise ValueError(f"conv lowering must be 'auto', 'im2col' or 'xla', got "
                     f"{lowering!r}.")
  return lowering == "im2col" or (lowering == "auto"
                                  and jax.default_backend() == "cpu")


class Conv(nn.Module):
  """`nn.Conv`'s computation and parameters, with a choice of lowering.

  `lowering`: 'xla' (native convolution), 'im2col' (dense convolutions as
  im2col matmuls, depthwise ones as shifted multiply-adds), or 'auto'
  (im2col on CPU, native elsewhere). `feature_group_count` is 1 or the
  number of input channels (depthwise); `padding` 'SAME', 'VALID' or
  explicit ((lo, hi), (lo, hi)).
  """
  features: int
  kernel_size: tuple[int, int] = (3, 3)
  strides: tuple[int, int] | int = (1, 1)
  padding: Any = "SAME"
  feature_group_count: int = 1
  use_bias: bool = True
  dtype: Any = None  # Computation dtype; None = the inputs'.
  lowering: str = "auto"

  @nn.compact
  def __call__(self, x):
    groups, cin = self.feature_group_count, x.shape[-1]
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        tuple(self.kernel_size) + (cin // groups,
                                                   self.features))
    strides = ((self.strides,) * 2 if isinstance(self.strides, int)
               else tuple(self.strides))
    if self.dtype is not None:
      x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    depthwise = groups == cin == self.features and groups > 1
    if use_im2col(self.lowering) and (groups == 1 or depthwise):
      conv = depthwise_conv if depthwise else im2col_conv
      y = conv(x, kernel, strides, self.padding)
    else:
      y = jax.lax.conv_general_dilated(
          x, kernel, strides, self.padding, feature_group_count=groups,
          dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if self.use_bias:
      bias = self.param("bias", nn.initializers.zeros, (self.features,))
      y = _add_bias(y, bias)
    return y


def _add_bias(y: jax.Array, bias: jax.Array) -> jax.Array:
  """y + bias, added in (at least) float32 and cast back to y's dtype.

  The bias gradient sums the output gradient over every example and
  position; in bfloat16 that sum keeps 8 bits (a sum of 14,400 ones comes
  out as 8,192) and the bias of a first conv layer lost all of its gradient.
  """
  wide = jnp.promote_types(y.dtype, jnp.float32)
  return (y.astype(wide) + bias.astype(wide)).astype(y.dtype)


class Dense(nn.Module):
  """`nn.Dense`'s computation and parameters (names, shapes, initialisers),
  with the bias added in float32 as in `Conv` (see `_add_bias`).

  `dtype`: computation dtype of the matmul; None = the promoted dtype of
  the inputs and the kernel, as nn.Dense.
  """
  features: int
  use_bias: bool = True
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (x.shape[-1], self.features))
    if self.dtype is not None:
      x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    y = jax.lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())))
    if self.use_bias:
      y = _add_bias(y, self.param("bias", nn.initializers.zeros,
                                  (self.features,)))
    return y


def pool(x: jax.Array, window: int, kind: str = "max",
         lowering: str = "auto") -> jax.Array:
  """Max or average pool, stride = window, 'SAME' padding, NHWC.

  Padding never counts: an average is over the window's real pixels, as in
  Keras's AveragePooling2D(padding='same').
  """
  if kind not in ("max", "avg"):
    raise ValueError(f"Unknown pooling {kind!r}; expected 'max' or 'avg'.")
  size = (window, window)
  if not use_im2col(lowering):
    if kind == "max":
      return nn.max_pool(x, size, size, "SAME")
    return nn.avg_pool(x, size, size, "SAME", count_include_pad=False)
  _, h, w, _ = x.shape
  pads = ((0, 0), _same_pads(h, window, window), _same_pads(w, window, window),
          (0, 0))
  windows = lambda a: a.reshape(a.shape[0], a.shape[1] // window, window,
                                a.shape[2] // window, window, a.shape[3])
  if kind == "max":
    return windows(jnp.pad(x, pads, constant_values=-jnp.inf)).max((2, 4))
  count = windows(jnp.pad(jnp.ones((1, h, w, 1), x.dtype), pads)).sum((2, 4))
  return windows(jnp.pad(x, pads)).sum((2, 4)) / count
