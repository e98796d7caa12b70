"""SimCLR (Chen et al. 2020): the exemplar task's NT-Xent on SimCLR's views.

Each image gives two views (ssl_jax/data/view_augment.py: random resized
crop, flip, colour jitter with hue, grayscale; blur where the image size
allows); a projection MLP embeds them, and NT-Xent at temperature
`temperature` pulls an image's views together and pushes the other views
of the global batch apart (ssl_jax/pretext/exemplar.py's loss, with its
'loss' and 'accuracy' metrics). Views are view-major.
"""
import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax import pretext
from ssl_jax.data import view_augment
from ssl_jax.pretext import exemplar


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.weight = 1.0  # Weight of the NT-Xent loss.
  c.loss = "nt_xent"  # Exemplar's loss; NT-Xent is SimCLR's.
  c.temperature = 0.5  # SimCLR's CIFAR-10 temperature.
  c.embed_dim = 128  # Projection output (SimCLR: 128).
  c.head_hidden = (512,)  # Hidden layers of the projection MLP.
  c.views = view_augment.config()  # SimCLR's views (no blur on CIFAR-10).
  return c


spec = exemplar.spec
loss = exemplar.loss


def transform(cfg, images, rng, train) -> pretext.Views:
  """Two views of each image, view-major; evaluation draws from key 0.
  Rows with the same target (the batch image) are positives."""
  source = jnp.tile(jnp.arange(images.shape[0], dtype=jnp.int32), 2)
  views = view_augment.views(cfg.views, rng if train else jax.random.key(0),
                             images, 2)
  return pretext.Views(views, source, source)
