"""Context prediction (Doersch et al. 2015): where does the second patch sit?

Each image's centred 3 x 3 grid of cells; a patch `jitter` pixels smaller
than its cell is cut from the centre cell and from one of its 8 neighbours
(at random in training, image index mod 8 at evaluation, patches centred),
and an 8-way head over the pair's concatenated features names the
neighbour. The patches come from the cropped, flipped batch. Neighbours are
numbered row-major around the centre: 0 1 2 / 3 . 4 / 5 6 7.
"""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssl_jax import pretext
from ssl_jax.data import augment

# The 3 x 3 grid's cells (row-major) of the 8 neighbours; the centre is 4.
NEIGHBOURS = np.array([0, 1, 2, 3, 5, 6, 7, 8], np.int32)
CENTRE = 4


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.weight = 1.0  # Weight of the context loss.
  c.jitter = 2  # Pixels each patch is smaller than its cell (random offset).
  c.patch_size = 32  # Resize patches to N x N (bilinear); 0 keeps their size.
  c.head_hidden = (64,)  # Hidden layers over the pair's features.
  return c


def spec(cfg) -> pretext.Spec:
  return pretext.Spec(pretext.Head(len(NEIGHBOURS), tuple(cfg.head_hidden),
                                   concat=2))


def corners(cells: jax.Array, offsets: jax.Array, height: int, width: int,
            cell: int) -> jax.Array:
  """(B, 2) cells, (B, 2, 2) offsets -> (B, 2, 2) patch top-left corners."""
  origin = jnp.array([(height - 3 * cell) // 2, (width - 3 * cell) // 2])
  return origin + cell * jnp.stack([cells // 3, cells % 3], -1) + offsets


def transform(cfg, images, rng, train) -> pretext.Views:
  b, h, w, _ = images.shape
  cell = min(h, w) // 3
  size = cell - cfg.jitter
  if size < 1:
    raise ValueError(f"pretext.context: {h}x{w} images leave no patch after "
                     f"jitter {cfg.jitter}.")
  if train:
    k_rng, offset_rng = jax.random.split(rng)
    k = jax.random.randint(k_rng, (b,), 0, len(NEIGHBOURS), jnp.int32)
    offsets = jax.random.randint(offset_rng, (b, 2, 2), 0, cfg.jitter + 1)
  else:
    k = jnp.arange(b, dtype=jnp.int32) % len(NEIGHBOURS)
    offsets = jnp.full((b, 2, 2), cfg.jitter // 2)
  cells = jnp.stack([jnp.full((b,), CENTRE), jnp.asarray(NEIGHBOURS)[k]], 1)
  patches = augment.cut_patches(images, corners(cells, offsets, h, w, cell),
                                size, int(cfg.patch_size))
  return pretext.Views(patches, k, jnp.arange(b, dtype=jnp.int32))


loss = pretext.cross_entropy_loss
