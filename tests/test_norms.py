"""Tests for ssl_jax.models.norms against NumPy formulas and flax.linen counterparts.

References are independent of the code under test: forward passes are the
plain formulas below evaluated in float64 NumPy; reference gradients are
jax.grad of the same formulas evaluated on float64 jnp arrays (x64 enabled
only inside the reference computation).
"""
import zlib

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np
import pytest

from ssl_jax import plugins
from ssl_jax.models import norms

EPS = 1e-5
GROUPS = 4
FLAX_COUNTERPARTS = {
    'layer': lambda: nn.LayerNorm(epsilon=EPS, use_fast_variance=False),
    'group': lambda: nn.GroupNorm(num_groups=GROUPS, epsilon=EPS,
                                  use_fast_variance=False),
    'instance': lambda: nn.InstanceNorm(epsilon=EPS, use_fast_variance=False),
    'rms': lambda: nn.RMSNorm(epsilon=EPS, use_fast_variance=False),
}


def ref_norm(kind, x, params):
  """Plain normalisation formula; works on NumPy and jnp arrays alike."""
  n = x.ndim

  def standardize(v, axes):
    mean = v.mean(axis=axes, keepdims=True)
    var = ((v - mean) ** 2).mean(axis=axes, keepdims=True)
    return (v - mean) / (var + EPS) ** 0.5

  if kind == 'batch':
    xhat = standardize(x, tuple(range(n - 1)))
  elif kind == 'layer':
    xhat = standardize(x, (n - 1,))
  elif kind == 'instance':
    xhat = standardize(x, tuple(range(1, n - 1)))
  elif kind == 'group':
    c = x.shape[-1]
    xg = x.reshape(x.shape[:-1] + (GROUPS, c // GROUPS))
    xhat = standardize(xg, tuple(range(1, n - 1)) + (n,)).reshape(x.shape)
  elif kind == 'rms':
    xhat = x / ((x ** 2).mean(axis=n - 1, keepdims=True) + EPS) ** 0.5
  out = xhat * params['scale']
  return out + params['bias'] if 'bias' in params else out


def make(kind, train=True, **kw):
  return norms.norm_layer(kind, train=train, epsilon=EPS, num_groups=GROUPS,
                          **kw)()


def randomize_params(variables, rng):
  """Replaces scale/bias with random, non-trivial values."""
  def draw(path, leaf):
    if path[-1].key == 'scale':
      return jnp.asarray(1 + 0.5 * rng.normal(size=leaf.shape), leaf.dtype)
    return jnp.asarray(rng.normal(size=leaf.shape), leaf.dtype)
  return {**variables,
          'params': jax.tree_util.tree_map_with_path(draw,
                                                     variables['params'])}


def apply_train(module, variables, x, **kw):
  return module.apply(variables, x, mutable=['batch_stats'], **kw)


def allclose(a, b, rtol, atol):
  np.testing.assert_allclose(np.asarray(a, np.float64),
                             np.asarray(b, np.float64), rtol=rtol, atol=atol)


SHAPES = {
    'batch': [(16, 32), (4, 5, 5, 8)],
    'layer': [(16, 32), (4, 5, 5, 8)],
    'group': [(16, 32), (4, 5, 5, 8)],
    'instance': [(4, 6, 8), (4, 5, 5, 8)],  # 2-D has no spatial axes.
    'rms': [(16, 32), (4, 5, 5, 8)],
}
CASES = [(k, s, d) for k in SHAPES for s in SHAPES[k]
         for d in (jnp.float32, jnp.bfloat16)]


@pytest.mark.parametrize('kind,shape,dtype', CASES)
def test_forward_and_grads_match_formula(kind, shape, dtype):
  rng = np.random.default_rng(zlib.crc32(repr((kind, shape)).encode()))
  x = jnp.asarray(2 + 3 * rng.normal(size=shape), dtype)
  module = make(kind)
  variables = randomize_params(module.init(jax.random.key(0), x), rng)
  params = variables['params']
  out, updates = apply_train(module, variables, x)
  assert out.dtype == dtype

  x64 = np.asarray(x, np.float64)  # The (possibly bf16-rounded) input.
  p64 = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  # bf16 output: f32-accurate result rounded to 8 mantissa bits.
  rtol, atol = (1e-5, 1e-5) if dtype == jnp.float32 else (2**-7, 1e-3)
  allclose(out, ref_norm(kind, x64, p64), rtol, atol)
  if kind == 'batch':  # Stats are float32-accurate even for bf16 inputs.
    axes = tuple(range(x.ndim - 1))
    allclose(updates['batch_stats']['mean'], 0.1 * x64.mean(axes), 1e-5, 1e-6)
    allclose(updates['batch_stats']['var'], 0.9 + 0.1 * x64.var(axes),
             1e-5, 1e-6)

  cot = rng.normal(size=shape)
  def loss(p, inp):
    y, _ = apply_train(module, {**variables, 'params': p}, inp)
    return jnp.sum(y.astype(jnp.float32) * cot.astype(np.float32))
  grads = jax.grad(loss, argnums=(0, 1))(params, x)
  with jax.enable_x64(True):
    ref_grads = jax.grad(
        lambda p, inp: jnp.sum(ref_norm(kind, inp, p) * cot), argnums=(0, 1))(
            jax.tree.map(jnp.asarray, p64), jnp.asarray(x64))
    ref_grads = jax.tree.map(np.asarray, ref_grads)
  assert grads[1].dtype == dtype
  for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
    scale = np.abs(r).max()
    if dtype == jnp.float32:
      allclose(g, r, 1e-4, 1e-5 * scale)
    else:
      allclose(g, r, 3e-2, 3e-2 * scale)


def _assert_same_structure(ours, theirs):
  assert jax.tree.structure(ours) == jax.tree.structure(theirs)
  assert jax.tree.map(jnp.shape, ours) == jax.tree.map(jnp.shape, theirs)


@pytest.mark.parametrize('kind', list(FLAX_COUNTERPARTS))
def test_matches_flax(kind):
  rng = np.random.default_rng(1)
  x = jnp.asarray(1 + 2 * rng.normal(size=(3, 5, 5, 8)), jnp.float32)
  ours, theirs = make(kind), FLAX_COUNTERPARTS[kind]()
  variables = randomize_params(ours.init(jax.random.key(0), x), rng)
  _assert_same_structure(variables, theirs.init(jax.random.key(0), x))
  allclose(ours.apply(variables, x), theirs.apply(variables, x), 1e-6, 1e-6)


@pytest.mark.parametrize('train', [True, False])
def test_batchnorm_matches_flax(train):
  rng = np.random.default_rng(2)
  x = jnp.asarray(1 + 2 * rng.normal(size=(6, 4, 4, 8)), jnp.float32)
  ours = make('batch', train=train)
  theirs = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                        epsilon=EPS, use_fast_variance=False)
  variables = randomize_params(ours.init(jax.random.key(0), x), rng)
  _assert_same_structure(variables, theirs.init(jax.random.key(0), x))
  variables['batch_stats'] = {
      'mean': jnp.asarray(rng.normal(size=8), jnp.float32),
      'var': jnp.asarray(rng.uniform(0.5, 2.0, size=8), jnp.float32)}
  out, stats = apply_train(ours, variables, x)
  ref_out, ref_stats = apply_train(theirs, variables, x)
  allclose(out, ref_out, 1e-6, 1e-6)
  jax.tree.map(lambda a, b: allclose(a, b, 1e-6, 1e-6), stats, ref_stats)


def test_batchnorm_running_stats_and_eval():
  rng = np.random.default_rng(3)
  batches = [rng.normal(loc=i, scale=1 + i, size=(10, 3, 3, 4))
             for i in range(4)]
  train_bn = make('batch', train=True)
  variables = randomize_params(
      train_bn.init(jax.random.key(0), jnp.asarray(batches[0], jnp.float32)),
      rng)
  # Like flax, init does not update the stats.
  np.testing.assert_array_equal(variables['batch_stats']['mean'], 0.0)
  np.testing.assert_array_equal(variables['batch_stats']['var'], 1.0)
  ra_mean, ra_var = np.zeros(4), np.ones(4)
  for b in batches:
    _, upd = apply_train(train_bn, variables, jnp.asarray(b, jnp.float32))
    variables = {**variables, **upd}
    ra_mean = 0.9 * ra_mean + 0.1 * b.mean((0, 1, 2))
    ra_var = 0.9 * ra_var + 0.1 * b.var((0, 1, 2))
  allclose(variables['batch_stats']['mean'], ra_mean, 1e-5, 1e-6)
  allclose(variables['batch_stats']['var'], ra_var, 1e-5, 1e-6)

  x = rng.normal(size=(5, 3, 3, 4))
  out = make('batch', train=False).apply(variables, jnp.asarray(x, jnp.float32))
  p = variables['params']
  ref = ((x - ra_mean) / np.sqrt(ra_var + EPS) * np.asarray(p['scale'])
         + np.asarray(p['bias']))
  allclose(out, ref, 1e-5, 1e-5)


def _device_batch(rng, shape):
  """A batch whose 4 per-device chunks have clearly different statistics."""
  offsets = np.repeat(np.arange(4) * 2.0, shape[0] // 4)
  x = rng.normal(size=shape) + offsets.reshape((-1,) + (1,) * (len(shape) - 1))
  return jnp.asarray(x, jnp.float32)


def test_batchnorm_sharded_jit_equals_single_device():
  rng = np.random.default_rng(4)
  x = _device_batch(rng, (16, 3, 3, 8))
  bn = make('batch')
  variables = randomize_params(bn.init(jax.random.key(0), x), rng)
  step = jax.jit(lambda v, inp: apply_train(bn, v, inp))
  ref_out, ref_stats = step(variables, x)
  mesh = Mesh(jax.devices(), ('data',))
  xs = jax.device_put(x, NamedSharding(mesh, P('data')))
  assert len(xs.sharding.device_set) == 4
  out, stats = step(variables, xs)
  allclose(out, ref_out, 1e-6, 1e-6)
  jax.tree.map(lambda a, b: allclose(a, b, 1e-6, 1e-6), stats, ref_stats)


def _split(a):
  """(B, ...) -> (4, B/4, ...): one chunk of the global batch per device."""
  return a.reshape((4, a.shape[0] // 4) + a.shape[1:])


def _pmapped_train(bn, variables, x, mask=None):
  """Train step under pmap on 4 devices.

  Returns the output reshaped to the global batch and the updated stats
  (after checking that all devices agree on them).
  """
  rep = jax.tree.map(lambda a: jnp.broadcast_to(a, (4,) + a.shape), variables)
  step = jax.pmap(lambda v, inp, m: apply_train(bn, v, inp, mask=m),
                  axis_name='data')
  out, stats = step(rep, _split(x), None if mask is None else _split(mask))
  for leaf in jax.tree.leaves(stats):
    allclose(leaf, np.broadcast_to(leaf[0], leaf.shape), 0, 1e-6)
  return out.reshape(x.shape), jax.tree.map(lambda a: a[0], stats)


def test_batchnorm_pmap_equals_single_device():
  rng = np.random.default_rng(5)
  x = _device_batch(rng, (16, 3, 3, 8))
  bn_p = make('batch', axis_name='data')
  # Init outside pmap: the axis name is not needed during init.
  variables = randomize_params(bn_p.init(jax.random.key(0), x), rng)
  ref_out, ref_stats = apply_train(make('batch'), variables, x)
  out, stats = _pmapped_train(bn_p, variables, x)
  allclose(out, ref_out, 1e-5, 1e-5)
  jax.tree.map(lambda a, b: allclose(a, b, 1e-5, 1e-6), stats, ref_stats)


MASK_CASES = [((16, 8), (16,)), ((8, 3, 3, 4), (8,)),
              ((8, 3, 3, 4), (8, 3, 3))]


@pytest.mark.parametrize('x_shape,mask_shape', MASK_CASES)
def test_batchnorm_masked_stats_equal_subset_stats(x_shape, mask_shape):
  rng = np.random.default_rng(6)
  x = rng.normal(loc=1.0, size=x_shape)
  mask = rng.uniform(size=mask_shape) < 0.5
  mask.flat[0] = True
  x[~mask] += 100.0  # Would visibly shift the stats if not masked out.
  bn = norms.BatchNorm(use_running_average=False, momentum=0.0, epsilon=EPS)
  xj = jnp.asarray(x, jnp.float32)
  variables = bn.init(jax.random.key(0), xj)
  out, upd = apply_train(bn, variables, xj, mask=jnp.asarray(mask))
  subset = x[mask].reshape(-1, x_shape[-1])
  mean, var = subset.mean(0), subset.var(0)
  allclose(upd['batch_stats']['mean'], mean, 1e-5, 1e-5)
  allclose(upd['batch_stats']['var'], var, 1e-5, 1e-5)
  # Masked-out examples are still normalised (with the subset stats).
  allclose(out, (x - mean) / np.sqrt(var + EPS), 1e-4, 1e-4)


def test_batchnorm_masked_pmap_uses_global_counts():
  rng = np.random.default_rng(7)
  x = np.asarray(_device_batch(rng, (16, 2, 2, 4)), np.float64)
  # Uneven valid counts per device (one device has none), so averaging
  # per-device means would be wrong.
  mask = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1], bool)
  bn_p = norms.BatchNorm(use_running_average=False, axis_name='data',
                         momentum=0.0, epsilon=EPS)
  xj = jnp.asarray(x, jnp.float32)
  variables = bn_p.init(jax.random.key(0), xj)
  _, stats = _pmapped_train(bn_p, variables, xj, jnp.asarray(mask))
  subset = x[mask].reshape(-1, 4)
  allclose(stats['batch_stats']['mean'], subset.mean(0), 1e-5, 1e-5)
  allclose(stats['batch_stats']['var'], subset.var(0), 1e-5, 1e-5)


def test_groupnorm_bad_num_groups_raises():
  gn = norms.GroupNorm(num_groups=3)
  with pytest.raises(ValueError, match=r'num_groups=3.*\(8\)'):
    gn.init(jax.random.key(0), jnp.ones((2, 4, 4, 8)))


def test_factory():
  with pytest.raises(ValueError, match="Unknown norm 'weight'.*batch, group"):
    norms.norm_layer('weight', train=True)
  assert set(plugins.names("norm")) == {'batch', 'layer', 'group', 'instance', 'rms',
                              'none'}
  assert make('batch', train=True).use_running_average is False
  assert make('batch', train=False).use_running_average is True
  assert make('group').num_groups == GROUPS
  x = jnp.arange(6.0).reshape(2, 3)
  identity = make('none')
  variables = identity.init(jax.random.key(0), x)
  assert not variables
  np.testing.assert_array_equal(identity.apply(variables, x, mask=None), x)
