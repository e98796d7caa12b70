"""Batch Norm vs Layer Norm on a 5x5 matrix: our modules next to NumPy.

Batch Norm normalises each column (feature) over the batch axis 0; Layer Norm
normalises each row (example) over the last axis. Run:
  python experiments/norm_demo.py --seed 0
"""
import argparse

import jax
import numpy as np

from ssl_jax.models import norms


def numpy_norm(x, axis, eps):
  """(x - mean) / sqrt(var + eps) with the biased variance along `axis`."""
  mean = x.mean(axis, keepdims=True)
  var = ((x - mean) ** 2).mean(axis, keepdims=True)
  return (x - mean) / np.sqrt(var + eps)


def run_module(module, x):
  """Applies `module` in train mode with its initial (identity) scale/bias."""
  variables = module.init(jax.random.key(0), x)
  y, _ = module.apply(variables, x, mutable=['batch_stats'])
  return np.asarray(y)


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  eps = 1e-5
  x = np.random.default_rng(args.seed).normal(2.0, 3.0, (5, 5))
  x = x.astype(np.float32)
  np.set_printoptions(precision=4, suppress=True)
  print(f'input (seed {args.seed}):\n{x}\n')
  cases = [
      ('Batch Norm (per column, axis 0)',
       norms.norm_layer('batch', train=True, epsilon=eps)(), 0),
      ('Layer Norm (per row, last axis)',
       norms.norm_layer('layer', train=True, epsilon=eps)(), -1),
  ]
  for title, module, axis in cases:
    ours = run_module(module, x)
    ref = numpy_norm(x.astype(np.float64), axis, eps)
    print(f'{title}\n  ssl_jax.models.norms:\n{ours}\n  NumPy reference:\n{ref}')
    print(f'  max |difference| = {np.abs(ours - ref).max():.3e}\n')


if __name__ == '__main__':
  main()
