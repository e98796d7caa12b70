"""Jigsaw pretext (Noroozi & Favaro 2016): which permutation shuffled the tiles?

Each image's centred square of grid x grid cells (side c = min(H, W) // grid;
the rows and columns left over are split evenly on both sides) is cut into
one tile of side t = c - jitter per cell. Cells are numbered row-major: cell
k lies at row k // grid, column k % grid. A puzzle with permutation index p
puts cell perms[p][j] in tile slot j, for j = 0 .. T-1 (T = grid ** 2); the
head sees the T tiles' features concatenated in slot order and names p.

Everything runs inside jitted code on uint8 or float batches; only the
permutation set, a constant of the task, is computed on the host (once).
"""
import functools
import itertools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssl_jax import pretext
from ssl_jax.data import augment


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.weight = 1.0  # w_jig: weight of the jigsaw loss.
  c.grid = 2  # grid x grid tiles per puzzle; 2 suits 32x32 (CIFAR) images.
  # Pixels each tile is smaller than its cell. Training places the tile at a
  # random offset in [0, jitter] (both axes) inside its cell, so matching
  # edges cannot give the answer away; evaluation centres it.
  c.jitter = 2
  # The permutation set's size, i.e. the number of classes: 24 is all of 4!
  # for grid 2; Noroozi & Favaro use 100 or 1000 for grid 3.
  c.num_permutations = 24
  # The permutation set defines the task, so it has its own seed rather than
  # following the run's: runs with different seeds solve the same puzzles.
  c.permutation_seed = 0
  # N > 0 resizes tiles (bilinear) to N x N: 32 suits backbones made for
  # 32x32 images (the core CNN's VALID convs need it); 0 keeps their size.
  c.tile_size = 32
  # Hidden layers after the concatenation: they let the head relate tiles,
  # like fc7 of the paper's context-free network.
  c.head_hidden = (512,)
  return c


def _check(cfg) -> int:
  """Validates the shape-independent fields; returns T = grid ** 2."""
  if int(cfg.grid) != cfg.grid or cfg.grid < 2:
    raise ValueError(f"pretext.jigsaw.grid must be an integer >= 2, got "
                     f"{cfg.grid!r}.")
  if cfg.jitter < 0:
    raise ValueError(f"pretext.jigsaw.jitter must be >= 0, got {cfg.jitter}.")
  if cfg.tile_size < 0:
    raise ValueError(f"pretext.jigsaw.tile_size must be >= 0 (0 = keep), got "
                     f"{cfg.tile_size}.")
  tiles = int(cfg.grid) ** 2
  if not 1 <= cfg.num_permutations <= math.factorial(tiles):
    raise ValueError(
        f"pretext.jigsaw.num_permutations must be in [1, {tiles}!] = "
        f"[1, {math.factorial(tiles)}] for grid {cfg.grid}, got "
        f"{cfg.num_permutations}.")
  return tiles


def spec(cfg) -> pretext.Spec:
  # Tiles come from the images before the crop: its zero border would mark
  # the outer tiles, a cue that solves training puzzles and is absent at
  # test time.
  return pretext.Spec(pretext.Head(int(cfg.num_permutations),
                                   tuple(cfg.head_hidden), _check(cfg)),
                      raw_images=True)


@functools.lru_cache(maxsize=None)
def permutations(num_tiles: int, num_permutations: int,
                 seed: int) -> np.ndarray:
  """(num_permutations, num_tiles) int32: a maximal-Hamming-distance set.

  Greedy, as in Noroozi & Favaro: a random first permutation, then each time
  the one (of all num_tiles!) whose smallest Hamming distance to those
  chosen is largest, ties broken at random; all draws come from `seed`.
  Cached: a host-side constant of the task. Treat the result as read-only.
  """
  if not 1 <= num_permutations <= math.factorial(num_tiles):
    raise ValueError(f"num_permutations must be in [1, {num_tiles}!], got "
                     f"{num_permutations}.")
  every = np.array(list(itertools.permutations(range(num_tiles))), np.int8)
  # Slot-major copy: comparing one slot of all candidates at a time runs on
  # contiguous memory, ~20x faster than a row-wise compare for 9!.
  slots = np.ascontiguousarray(every.T)
  rng = np.random.default_rng(seed)
  chosen = [int(rng.integers(len(every)))]
  # Smallest distance of each candidate to the chosen set; 0 for chosen ones,
  # so none is picked twice while any unchosen one (distance >= 2) is left.
  nearest = np.full(len(every), num_tiles + 1, np.int8)
  for _ in range(num_permutations - 1):
    distance = np.zeros(len(every), np.int8)
    for slot, cell in zip(slots, every[chosen[-1]]):
      distance += slot != cell
    np.minimum(nearest, distance, out=nearest)
    best = np.flatnonzero(nearest == nearest.max())
    chosen.append(int(best[rng.integers(len(best))]))
  out = every[chosen].astype(np.int32)
  out.flags.writeable = False
  return out


def transform(cfg, images, rng, train) -> pretext.Views:
  """Puzzles, one per image: T tiles each, example-major.

  Training draws p uniformly and each tile's offset in [0, jitter]; at
  evaluation (train False or rng None) p = image index mod num_permutations
  and tiles are centred (offset jitter // 2). Views: images (B*T, t', t', C)
  (puzzle 0's slots 0..T-1, then puzzle 1's, ...; t' = tile_size or t,
  float32 when resized, else the input dtype), target (B,) int32 p, source
  (B,) int32 and extra (B, T, 2) int32, the (row, column) offset of slot
  j's tile inside its cell perms[p][j].
  """
  num_tiles = _check(cfg)
  grid, jitter = int(cfg.grid), int(cfg.jitter)
  b, h, w, channels = images.shape
  cell = min(h, w) // grid
  tile = cell - jitter
  if tile < 1:
    raise ValueError(
        f"pretext.jigsaw: {h}x{w} images give {cell}px cells for grid "
        f"{grid}, leaving no tile after jitter {jitter}; lower "
        f"pretext.jigsaw.jitter or pretext.jigsaw.grid.")
  perms = jnp.asarray(permutations(num_tiles, int(cfg.num_permutations),
                                   int(cfg.permutation_seed)))
  if not train or rng is None:
    p = jnp.arange(b, dtype=jnp.int32) % cfg.num_permutations
    offsets = jnp.full((b, num_tiles, 2), jitter // 2, jnp.int32)
  else:
    perm_rng, offset_rng = jax.random.split(rng)
    p = jax.random.randint(perm_rng, (b,), 0, cfg.num_permutations,
                           jnp.int32)
    offsets = jax.random.randint(offset_rng, (b, num_tiles, 2), 0, jitter + 1,
                                 jnp.int32)
  cells = perms[p]  # (B, T): the cell in each slot.
  origin = jnp.array([(h - grid * cell) // 2, (w - grid * cell) // 2])
  corners = (origin + cell * jnp.stack([cells // grid, cells % grid], -1)
             + offsets)  # (B, T, 2): each tile's top-left pixel.
  tiles = augment.cut_patches(images, corners, tile, int(cfg.tile_size))
  return pretext.Views(tiles, p, jnp.arange(b, dtype=jnp.int32),
                       extra=offsets)


loss = pretext.cross_entropy_loss
