"""Convolution and pooling lowered for speed on XLA:CPU.

On CPU, XLA's convolutions (and their gradients) run far below the machine's
matmul speed for the small images here, and max-pool gradients lower to a
slow select-and-scatter. Measured on the 2-core dev machine (batch 128,
forward + kernel gradient): the core CNN's 3x3 convolutions take 22, 7.8 and
1.3 ms as XLA convolutions and 10.8, 3.5 and 0.8 ms as im2col (the k*k
shifted slices concatenated, then one matmul); a 3x3/3 max pool's forward +
backward takes 41 ms with `nn.max_pool` and 5.4 ms as a reshape + max.
`experiments/bench.py` measures the whole step. On GPU/TPU the native
convolution is used.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp


def _same_pads(size: int, window: int, stride: int) -> tuple[int, int]:
  """TF/XLA 'SAME' padding (more at the end when odd)."""
  out = -(-size // stride)
  total = max((out - 1) * stride + window - size, 0)
  return total // 2, total - total // 2


def im2col_conv(x: jax.Array, kernel: jax.Array, strides=(1, 1),
                padding: str = "VALID") -> jax.Array:
  """`lax.conv_general_dilated` (NHWC, HWIO) as shifted slices + one matmul."""
  kh, kw, cin, cout = kernel.shape
  sh, sw = strides
  if padding == "SAME":
    x = jnp.pad(x, ((0, 0), _same_pads(x.shape[1], kh, sh),
                    _same_pads(x.shape[2], kw, sw), (0, 0)))
  elif padding != "VALID":
    raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}.")
  oh, ow = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
  cols = jnp.concatenate(
      [x[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw]
       for i in range(kh) for j in range(kw)], axis=-1)  # (i, j, c) order.
  return cols @ kernel.reshape(kh * kw * cin, cout)


def use_im2col(lowering: str) -> bool:
  if lowering not in ("auto", "im2col", "xla"):
    raise ValueError(f"conv lowering must be 'auto', 'im2col' or 'xla', got "
                     f"{lowering!r}.")
  return lowering == "im2col" or (lowering == "auto"
                                  and jax.default_backend() == "cpu")


class Conv(nn.Module):
  """`nn.Conv`'s computation and parameters, with a choice of lowering.

  `lowering`: 'xla' (native convolution), 'im2col', or 'auto' (im2col on
  CPU, native elsewhere).
  """
  features: int
  kernel_size: tuple[int, int] = (3, 3)
  strides: tuple[int, int] = (1, 1)
  padding: str = "SAME"
  use_bias: bool = True
  lowering: str = "auto"

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        tuple(self.kernel_size) + (x.shape[-1], self.features))
    if use_im2col(self.lowering):
      y = im2col_conv(x, kernel, self.strides, self.padding)
    else:
      y = jax.lax.conv_general_dilated(
          x, kernel, self.strides, self.padding,
          dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


def max_pool(x: jax.Array, window: int, lowering: str = "auto") -> jax.Array:
  """Max pool with stride = window and 'SAME' padding, NHWC."""
  if not use_im2col(lowering):
    return nn.max_pool(x, (window, window), (window, window), "SAME")
  _, h, w, _ = x.shape
  x = jnp.pad(x, ((0, 0), _same_pads(h, window, window),
                  _same_pads(w, window, window), (0, 0)),
              constant_values=-jnp.inf)
  b, h, w, c = x.shape
  return x.reshape(b, h // window, window, w // window, window, c).max((2, 4))
