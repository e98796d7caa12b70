"""Normalization layers: batch, layer, group, instance and RMS norm.

Own implementations (not wrappers of flax.linen's), but parameter-compatible
with their flax.linen counterparts: same variable names, shapes, initialisers
and epsilon placement, so weights and batch stats copy over 1:1. Statistics
are always computed in at least float32, also for bfloat16 inputs; the output
is cast to `dtype` (default: the input dtype). Variances are biased and use
the two-pass formula E[(x - mean)^2], which is more accurate than flax's
default E[x^2] - E[x]^2.
"""
from collections.abc import Callable
import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from ssl_jax import plugins

Dtype = Any

def _f32(x):
  """Promotes half precision to float32 (keeps float64)."""
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _moments(x, axes):
  """Biased mean and variance over `axes`, kept as size-1 dims."""
  mean = x.mean(axes, keepdims=True)
  var = jnp.square(x - mean).mean(axes, keepdims=True)
  return mean, var


def _normalize(mdl, x, mean, var, use_bias):
  """(x - mean) / sqrt(var + eps) * scale + bias, cast to the output dtype.

  `mean`/`var` broadcast against `x`; `scale`/`bias` are per channel (last
  axis) and read from `mdl`, which must define epsilon, use_scale, dtype and
  param_dtype.
  """
  features = (x.shape[-1],)
  mul = lax.rsqrt(var + mdl.epsilon)
  if mdl.use_scale:
    mul = mul * mdl.param('scale', nn.initializers.ones, features,
                          mdl.param_dtype)
  y = (_f32(x) - mean) * mul
  if use_bias:
    y = y + mdl.param('bias', nn.initializers.zeros, features, mdl.param_dtype)
  return y.astype(mdl.dtype or x.dtype)


class BatchNorm(nn.Module):
  """Batch normalization over all axes but the last (features).

  Attributes:
    use_running_average: use the stored running statistics (eval) instead of
      batch statistics (train).
    axis_name: pmap/shard_map axis to aggregate statistics over, so they are
      global-batch statistics. Not needed under plain jit (SPMD).
    momentum: running stats decay: ra = momentum * ra + (1 - momentum) * stat.
    epsilon: added to the variance inside the square root.
    dtype: output dtype (default: input dtype).
    param_dtype: dtype of scale and bias.
    use_bias: learn a per-channel bias (`bias`).
    use_scale: learn a per-channel scale (`scale`).
  """
  use_running_average: bool
  axis_name: str | None = None
  momentum: float = 0.9
  epsilon: float = 1e-5
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  use_bias: bool = True
  use_scale: bool = True

  @nn.compact
  def __call__(self, x, mask=None):
    """Normalizes `x`.

    Args:
      x: input of shape (batch, ..., features).
      mask: optional per-example mask of shape x.shape[:k] (k < x.ndim);
        examples where it is zero/False are left out of the batch statistics
        but still normalized. Ignored with running averages.

    Returns:
      The normalized input, same shape as `x`.
    """
    features = (x.shape[-1],)
    ra_mean = self.variable('batch_stats', 'mean', jnp.zeros, features,
                            jnp.float32)
    ra_var = self.variable('batch_stats', 'var', jnp.ones, features,
                           jnp.float32)
    if self.use_running_average:
      mean, var = ra_mean.value, ra_var.value
    else:
      mean, var = self._batch_moments(_f32(x), mask)
      # Like flax: init only creates the stats, so init inputs need not be
      # representative.
      if not self.is_initializing():
        m = self.momentum
        ra_mean.value = m * ra_mean.value + (1 - m) * mean
        ra_var.value = m * ra_var.value + (1 - m) * var
    return _normalize(self, x, mean, var, self.use_bias)

  def _batch_moments(self, x, mask):
    """Per-channel (masked) mean and biased variance, summed across devices."""
    axes = tuple(range(x.ndim - 1))
    # The pmap axis need not exist during init (flax behaves the same).
    axis_name = None if self.is_initializing() else self.axis_name

    def total(v):
      s = v.sum(axes)
      return s if axis_name is None else lax.psum(s, axis_name)

    if mask is None:
      w = jnp.ones(x.shape[:-1] + (1,), x.dtype)
    else:
      m = (jnp.asarray(mask) != 0).astype(x.dtype)
      m = m.reshape(m.shape + (1,) * (x.ndim - m.ndim))
      w = jnp.broadcast_to(m, x.shape[:-1] + (1,))
    count = total(w)
    mean = total(x * w) / count
    var = total(jnp.square(x - mean) * w) / count
    return mean, var


class _PerExampleNorm(nn.Module):
  """Fields shared by the norms whose statistics are per example."""
  epsilon: float = 1e-6
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  use_bias: bool = True
  use_scale: bool = True


class LayerNorm(_PerExampleNorm):
  """Layer normalization over the last axis (per example and position)."""

  @nn.compact
  def __call__(self, x, mask=None):
    del mask  # Per-example statistics: masking examples changes nothing.
    mean, var = _moments(_f32(x), (-1,))
    return _normalize(self, x, mean, var, self.use_bias)


class GroupNorm(_PerExampleNorm):
  """Group normalization: per example over spatial axes and channel groups."""
  num_groups: int = 32

  @nn.compact
  def __call__(self, x, mask=None):
    del mask  # Per-example statistics: masking examples changes nothing.
    channels, groups = x.shape[-1], self.num_groups
    if groups <= 0 or channels % groups:
      raise ValueError(f'GroupNorm: num_groups={groups} does not divide the '
                       f'number of channels ({channels}).')
    size = channels // groups
    xg = _f32(x).reshape(x.shape[:-1] + (groups, size))
    mean, var = _moments(xg, tuple(range(1, x.ndim - 1)) + (-1,))
    # Back from (..., groups, 1) to per-channel (..., channels).
    mean = jnp.repeat(mean[..., 0], size, axis=-1)
    var = jnp.repeat(var[..., 0], size, axis=-1)
    return _normalize(self, x, mean, var, self.use_bias)


class InstanceNorm(_PerExampleNorm):
  """Instance normalization: per example and channel over spatial axes."""

  @nn.compact
  def __call__(self, x, mask=None):
    del mask  # Per-example statistics: masking examples changes nothing.
    mean, var = _moments(_f32(x), tuple(range(1, x.ndim - 1)))
    return _normalize(self, x, mean, var, self.use_bias)


class RMSNorm(nn.Module):
  """RMS normalization over the last axis: x / sqrt(mean(x^2) + eps) * scale."""
  epsilon: float = 1e-6
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  use_scale: bool = True

  @nn.compact
  def __call__(self, x, mask=None):
    del mask  # Per-example statistics: masking examples changes nothing.
    mean_sq = jnp.square(_f32(x)).mean(-1, keepdims=True)
    return _normalize(self, x, 0.0, mean_sq, use_bias=False)


class Identity(nn.Module):
  """No normalization (kind 'none')."""

  def __call__(self, x, mask=None):
    del mask
    return x


# Norms: fn(train, axis_name, momentum, epsilon, num_groups, dtype) -> a
# layer constructor; `model.norm` names one of these or an import path
# (ssl_jax/plugins.py).


def batch(train, axis_name, momentum, epsilon, num_groups, dtype):
  del num_groups
  return functools.partial(BatchNorm, use_running_average=not train,
                           axis_name=axis_name, momentum=momentum,
                           epsilon=epsilon, dtype=dtype)


def layer(train, axis_name, momentum, epsilon, num_groups, dtype):
  del train, axis_name, momentum, num_groups
  return functools.partial(LayerNorm, epsilon=epsilon, dtype=dtype)


def group(train, axis_name, momentum, epsilon, num_groups, dtype):
  del train, axis_name, momentum
  return functools.partial(GroupNorm, num_groups=num_groups, epsilon=epsilon,
                           dtype=dtype)


def instance(train, axis_name, momentum, epsilon, num_groups, dtype):
  del train, axis_name, momentum, num_groups
  return functools.partial(InstanceNorm, epsilon=epsilon, dtype=dtype)


def rms(train, axis_name, momentum, epsilon, num_groups, dtype):
  del train, axis_name, momentum, num_groups
  return functools.partial(RMSNorm, epsilon=epsilon, dtype=dtype)


def none(train, axis_name, momentum, epsilon, num_groups, dtype):
  del train, axis_name, momentum, epsilon, num_groups, dtype
  return Identity


def norm_layer(kind: str, *, train: bool, axis_name: str | None = None,
               momentum: float = 0.9, epsilon: float = 1e-5,
               num_groups: int = 32, dtype=None) -> Callable[..., nn.Module]:
  """Returns a constructor for the normalization named `kind`.

  Used inside a compact module as:
    norm = norm_layer(...); x = norm(name='bn1')(x)
  `train`, `axis_name` and `momentum` only affect 'batch'; `num_groups` only
  'group'.
  """
  return plugins.load("norm", kind, "model.norm")(
      train, axis_name, momentum, epsilon, num_groups, dtype)


class NormedModel(nn.Module):
  """Base of the convolutional models: their shared normalization fields."""
  norm: str = "batch"  # A kind of `norm_layer`.
  norm_momentum: float = 0.9  # BatchNorm running-statistics momentum.
  norm_epsilon: float = 1e-5  # Added to the variance of every kind.
  num_groups: int = 8  # GroupNorm groups.
  axis_name: str | None = None  # pmap axis for BatchNorm statistics.
  conv_lowering: str = "auto"  # See layers.Conv: im2col on CPU by default.
  # Computation dtype of activations, convolutions and matmuls: 'float32' or
  # 'bfloat16' (mixed precision). Parameters, optimizer state and BatchNorm
  # statistics stay float32; norms compute their statistics in float32 and
  # logits come out in float32.
  dtype: Any = "float32"

  @property
  def compute_dtype(self):
    """`dtype` as a NumPy dtype; an error names a value that is not float."""
    dtype = jnp.dtype(self.dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
      raise ValueError(f"model dtype must be 'float32' or 'bfloat16', got "
                       f"{self.dtype!r}.")
    return dtype

  def norm_layer(self, train: bool, kind: str | None = None, dtype=None):
    """`norm_layer` for this model's fields (`kind` replaces `self.norm`);
    its output is in `dtype`, by default the model's compute dtype."""
    return norm_layer(kind or self.norm, train=train, axis_name=self.axis_name,
                      momentum=self.norm_momentum, epsilon=self.norm_epsilon,
                      num_groups=self.num_groups,
                      dtype=dtype or self.compute_dtype)
