"""The view augmentations of SimCLR, BYOL and DINO, run inside jitted steps.

Random resized crop, flip, colour jitter, grayscale, Gaussian blur and
solarize, as torchvision defines them, over a whole batch at once: each image
draws its own parameters from the key, with no per-image Python loop and no
host round trip. Images are (N, H, W, C), C = 3 (RGB) or 1, uint8 or float on
the 0-255 scale; every op returns float32 clipped to [0, 255]. Each random op
has an explicit-parameter form (`resized_crop`, `adjust_hue`, `jitter`,
`gaussian_blur`, `solarize`) that tests compare with references.
"""
import math

import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax.data import augment

# ITU-R 601 luma weights (PIL's convert("L"), torchvision's rgb_to_grayscale).
LUMA = (0.299, 0.587, 0.114)
_HIGHEST = jax.lax.Precision.HIGHEST
# torchvision's RandomResizedCrop tries this many boxes before falling back.
_ATTEMPTS = 10
# Op ids of `jitter`, in the order of its factors.
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)


def _float(images: jax.Array) -> jax.Array:
  return images.astype(jnp.float32)


def _per_image(values: jax.Array) -> jax.Array:
  """(N,) -> (N, 1, 1, 1), to broadcast over images."""
  return values[:, None, None, None]


def _maybe(rng: jax.Array, prob: float, images: jax.Array, fn) -> jax.Array:
  """fn(images) for each image with probability `prob` (static).

  A prob of 0 skips fn at trace time, so a disabled op costs nothing.
  """
  if prob <= 0:
    return images
  if prob >= 1:
    return fn(images)
  hit = jax.random.bernoulli(rng, prob, images.shape[:1])
  return jnp.where(_per_image(hit), fn(images), images)


def grayscale(images: jax.Array) -> jax.Array:
  """Each pixel's luma in all its channels (RGB weights LUMA; else the mean)."""
  c = images.shape[-1]
  weights = jnp.asarray(LUMA if c == 3 else (1.0 / c,) * c, jnp.float32)
  luma = jnp.sum(images * weights, axis=-1, keepdims=True)
  return jnp.broadcast_to(luma, images.shape)


def adjust_colors(images, brightness, contrast, saturation) -> jax.Array:
  """Per-image brightness, contrast, saturation factors, as ColorJitter's.

  Float (N, H, W, C) on the 0-255 scale, (N,) factors; 1 leaves an image as
  it is. Brightness scales the values, contrast blends with the image's
  mean luma, saturation with each pixel's luma; each step clips to
  [0, 255], as torchvision's functional ops do.
  """
  per_image = lambda f: f[:, None, None, None]
  x = jnp.clip(images * per_image(brightness), 0, 255)
  mean = jnp.mean(grayscale(x), axis=(1, 2, 3), keepdims=True)
  x = jnp.clip(mean + (x - mean) * per_image(contrast), 0, 255)
  luma = grayscale(x)
  return jnp.clip(luma + (x - luma) * per_image(saturation), 0, 255)


def _separable(images: jax.Array, rows: jax.Array,
               cols: jax.Array) -> jax.Array:
  """Per-image linear maps along rows (N, H', H) and columns (N, W', W).

  Crops and blurs are both such maps; as batched matmuls they run on any
  backend without gathers. HIGHEST keeps float32 (no TF32/bf16 passes), so
  a one-hot map copies pixels exactly.
  """
  x = jnp.einsum("nyh,nhwc->nywc", rows, _float(images), precision=_HIGHEST)
  x = jnp.einsum("nxw,nywc->nyxc", cols, x, precision=_HIGHEST)
  return jnp.clip(x, 0, 255)


def _bilinear_matrix(start, length, size: int, limit: int) -> jax.Array:
  """(N, size, limit) weights: output i samples start + (i + 0.5) * length
  / size - 0.5 (align_corners=False), linearly between the two nearest
  pixels, positions outside clamped to the edge pixel."""
  i = jnp.arange(size, dtype=jnp.float32)
  pos = start[:, None] + (i + 0.5) * (length[:, None] / size) - 0.5
  pos = jnp.clip(pos, 0, limit - 1)
  lo = jnp.floor(pos)
  frac = (pos - lo)[..., None]
  lo = lo.astype(jnp.int32)
  hi = jnp.minimum(lo + 1, limit - 1)
  return (jax.nn.one_hot(lo, limit) * (1 - frac) +
          jax.nn.one_hot(hi, limit) * frac)


def resized_crop(images: jax.Array, boxes: jax.Array, size: int) -> jax.Array:
  """Crops box i of image i and resizes it to size x size, bilinearly.

  boxes: (N, 4) float (top, left, height, width) in pixels, sub-pixel
  allowed. Output pixel (i, j) samples the source at row top + (i + 0.5) *
  height / size - 0.5 (likewise columns), edge-clamped: PIL's BILINEAR with
  `box` when upscaling. No antialiasing: a box larger than the output is
  point-sampled, where PIL and torchvision average over the footprint. On
  CIFAR the crops are upscaled or near-size, where the two agree.
  """
  _, h, w, _ = images.shape
  boxes = jnp.asarray(boxes, jnp.float32)
  rows = _bilinear_matrix(boxes[:, 0], boxes[:, 2], size, h)
  cols = _bilinear_matrix(boxes[:, 1], boxes[:, 3], size, w)
  return _separable(images, rows, cols)


def crop_boxes(rng: jax.Array, n: int, height: int, width: int,
               scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> jax.Array:
  """(n, 4) boxes (top, left, height, width) as RandomResizedCrop draws them.

  Area fraction uniform in `scale`, log aspect ratio (width / height)
  uniform in log(ratio), sides rounded to pixels; the first of _ATTEMPTS
  candidates that fits wins, with an integer offset uniform over the
  positions. Where none fits: torchvision's central crop, the whole image
  trimmed to the nearest ratio bound.
  """
  area_rng, ratio_rng, top_rng, left_rng = jax.random.split(rng, 4)
  shape = (n, _ATTEMPTS)
  area = height * width * jax.random.uniform(area_rng, shape, jnp.float32,
                                             *scale)
  aspect = jnp.exp(jax.random.uniform(ratio_rng, shape, jnp.float32,
                                      math.log(ratio[0]), math.log(ratio[1])))
  w = jnp.round(jnp.sqrt(area * aspect))
  h = jnp.round(jnp.sqrt(area / aspect))
  fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
  first = jnp.argmax(fits, axis=1)[:, None]
  pick = lambda x: jnp.take_along_axis(x, first, 1)[:, 0]
  h, w, found = pick(h), pick(w), fits.any(axis=1)
  # The fallback, static: it depends on the shapes only.
  fall_h, fall_w = height, width
  if width / height < min(ratio):
    fall_h = round(width / min(ratio))
  elif width / height > max(ratio):
    fall_w = round(height * max(ratio))
  offset = lambda key, room: jax.random.randint(
      key, (n,), 0, room.astype(jnp.int32) + 1).astype(jnp.float32)
  top = jnp.where(found, offset(top_rng, height - h), (height - fall_h) // 2)
  left = jnp.where(found, offset(left_rng, width - w), (width - fall_w) // 2)
  return jnp.stack([top, left, jnp.where(found, h, fall_h),
                    jnp.where(found, w, fall_w)], -1)


def random_resized_crop(rng: jax.Array, images: jax.Array, size: int,
                        scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> jax.Array:
  """RandomResizedCrop: `resized_crop` at boxes from `crop_boxes`."""
  n, h, w, _ = images.shape
  return resized_crop(images, crop_boxes(rng, n, h, w, scale, ratio), size)


def adjust_hue(images: jax.Array, hue_factor) -> jax.Array:
  """Shifts each image's hue by its factor (N,) in [-0.5, 0.5] of a turn.

  torchvision's RGB -> HSV -> RGB, with the hue moved mod 1 and saturation
  and value kept. The way back is the closed form of the HSV sextants:
  channel n is v - (v - min) * clip(min(k, 4 - k), 0, 1), k = (n + 6 h)
  mod 6, n = 5, 3, 1 for R, G, B. C = 1 images have no hue: returned as is.
  Channels are taken apart rather than reduced over: XLA:CPU's reductions
  over a minor axis of 3 made this 8x slower.
  """
  x = _float(images)
  if x.shape[-1] == 1:
    return x
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  maxc = jnp.maximum(jnp.maximum(r, g), b)
  chroma = maxc - jnp.minimum(jnp.minimum(r, g), b)
  inv = 1.0 / jnp.where(chroma > 0, chroma, 1.0)  # Grey pixels: hue 0.
  sextant = jnp.where(maxc == r, (g - b) * inv,
                      jnp.where(maxc == g, 2.0 + (b - r) * inv,
                                4.0 + (r - g) * inv))
  shift = jnp.reshape(jnp.asarray(hue_factor, jnp.float32), (-1, 1, 1))
  hue = sextant / 6.0 + 1.0 + shift  # In (0, 2): mod 1 by one floor.
  hue6 = 6.0 * (hue - jnp.floor(hue))

  def channel(n):
    k = n + hue6
    k = jnp.where(k >= 6.0, k - 6.0, k)
    return maxc - chroma * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)

  return jnp.clip(jnp.stack([channel(5.0), channel(3.0), channel(1.0)], -1),
                  0, 255)


def jitter(images: jax.Array, factors: jax.Array,
           order: jax.Array) -> jax.Array:
  """ColorJitter at explicit parameters, each image in its own op order.

  factors: (N, 4) brightness, contrast, saturation (1 = unchanged) and hue
  shift (0 = unchanged); order: (N, 4) int, a permutation of the op ids
  BRIGHTNESS, CONTRAST, SATURATION, HUE in the order applied. Round r
  applies to each image the op its order puts at r, the others there at
  their neutral factors (equal to skipping them up to float rounding). The
  rounds run as a loop: unrolled, XLA:CPU fused them into each other and
  redid the work (1.8x slower).
  """
  factors = jnp.asarray(factors, jnp.float32)

  def round_(r, x):
    op = jax.lax.dynamic_index_in_dim(order, r, 1, keepdims=False)
    pick = lambda i: jnp.where(op == i, factors[:, i], 1.0)
    x = adjust_colors(x, pick(BRIGHTNESS), pick(CONTRAST),
                               pick(SATURATION))
    return jnp.where(_per_image(op == HUE), adjust_hue(x, factors[:, HUE]), x)

  return jax.lax.fori_loop(0, 4, round_, _float(images))


def jitter_params(rng: jax.Array, n: int, brightness=0.4, contrast=0.4,
                  saturation=0.2, hue=0.1, prob=0.8):
  """What `color_jitter(rng, ...)` draws for n images.

  Returns (factors (N, 4), order (N, 4), apply (N,) bool): factors uniform
  in [max(0, 1 - s), 1 + s] for the first three, hue in [-hue, hue]; order
  a uniform permutation of the four ops per image; apply true with `prob`.
  """
  factor_rng, order_rng, apply_rng = jax.random.split(rng, 3)
  lo = jnp.array([max(0.0, 1.0 - s) for s in (brightness, contrast,
                                              saturation)] + [-hue])
  hi = jnp.array([1.0 + brightness, 1.0 + contrast, 1.0 + saturation, hue])
  factors = jax.random.uniform(factor_rng, (n, 4), jnp.float32, lo, hi)
  order = jnp.argsort(jax.random.uniform(order_rng, (n, 4)), axis=1)
  return factors, order, jax.random.bernoulli(apply_rng, prob, (n,))


def color_jitter(rng: jax.Array, images: jax.Array, brightness=0.4,
                 contrast=0.4, saturation=0.2, hue=0.1,
                 prob=0.8) -> jax.Array:
  """RandomApply(ColorJitter(...), prob), with draws from `jitter_params`.

  Defaults are BYOL's; SimCLR's are 0.8 s, 0.8 s, 0.8 s, 0.2 s at strength
  s (1 on ImageNet, 0.5 on CIFAR).
  """
  x = _float(images)
  if prob <= 0:
    return x
  factors, order, apply = jitter_params(rng, x.shape[0], brightness,
                                        contrast, saturation, hue, prob)
  return jnp.where(_per_image(apply), jitter(x, factors, order), x)


def random_grayscale(rng: jax.Array, images: jax.Array,
                     prob=0.2) -> jax.Array:
  """RandomGrayscale: an image's luma in all its channels, with `prob`."""
  return _maybe(rng, prob, _float(images), grayscale)


def gaussian_blur(images: jax.Array, sigma, kernel_size: int) -> jax.Array:
  """Separable Gaussian blur, per-image sigma (N,), odd kernel_size.

  torchvision's kernel (taps at -(k-1)/2 .. (k-1)/2, normalised) with its
  reflect padding (edge pixel not repeated), so kernel_size // 2 must be
  less than each side.
  """
  _, h, w, _ = images.shape
  if kernel_size % 2 == 0 or kernel_size // 2 >= min(h, w):
    raise ValueError(f"kernel_size must be odd and kernel_size // 2 < "
                     f"{min(h, w)}, got {kernel_size}.")
  radius = kernel_size // 2
  taps = jnp.arange(-radius, radius + 1)
  sigma = jnp.asarray(sigma, jnp.float32)[:, None]
  kernel = jnp.exp(-0.5 * (taps / sigma) ** 2)
  kernel /= kernel.sum(-1, keepdims=True)

  def matrix(length):
    """(N, length, length): the blur along one axis, padding folded in."""
    src = jnp.abs(jnp.arange(length)[:, None] + taps)
    src = jnp.where(src > length - 1, 2 * (length - 1) - src, src)
    return jnp.einsum("nk,lkm->nlm", kernel, jax.nn.one_hot(src, length),
                      precision=_HIGHEST)

  return _separable(images, matrix(h), matrix(w))


def blur_kernel_size(side: int) -> int:
  """10% of the image side, odd, at least 3 (SimCLR; 23 for 224)."""
  k = int(0.1 * side)
  return max(3, k + 1 - k % 2)


def random_blur(rng: jax.Array, images: jax.Array, prob, sigma=(0.1, 2.0),
                kernel_size=None) -> jax.Array:
  """GaussianBlur with sigma uniform in `sigma`, applied with `prob`.

  kernel_size defaults to `blur_kernel_size` of the shorter side.
  """
  apply_rng, sigma_rng = jax.random.split(rng)
  n, h, w, _ = images.shape
  kernel_size = kernel_size or blur_kernel_size(min(h, w))
  sigmas = jax.random.uniform(sigma_rng, (n,), jnp.float32, *sigma)
  return _maybe(apply_rng, prob, _float(images),
                lambda x: gaussian_blur(x, sigmas, kernel_size))


def solarize(images: jax.Array, threshold=128) -> jax.Array:
  """Inverts pixels at or above threshold: x >= t -> 255 - x (PIL's)."""
  x = _float(images)
  return jnp.where(x >= threshold, 255 - x, x)


def random_solarize(rng: jax.Array, images: jax.Array, prob,
                    threshold=128) -> jax.Array:
  """RandomSolarize: `solarize` each image with `prob`."""
  return _maybe(rng, prob, _float(images), lambda x: solarize(x, threshold))


def view(rng: jax.Array, images: jax.Array, *, size: int,
         scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip=True,
         jitter_prob=0.8, brightness=0.4, contrast=0.4, saturation=0.2,
         hue=0.1, gray_prob=0.2, blur_prob=0.0,
         solarize_prob=0.0) -> jax.Array:
  """One augmented view per image, in SimCLR / BYOL order.

  Random resized crop to size x size, flip, colour jitter (with
  jitter_prob), grayscale, blur, solarize. Arguments are static; an op with
  prob 0 (or flip False) is skipped at trace time. Defaults are BYOL's
  first view without its blur (BYOL: blur 1.0 / 0.1, solarize 0 / 0.2).
  """
  keys = jax.random.split(rng, 6)
  x = random_resized_crop(keys[0], images, size, scale, ratio)
  if flip:
    x = augment.random_flip(keys[1], x)
  x = color_jitter(keys[2], x, brightness, contrast, saturation, hue,
                   jitter_prob)
  x = random_grayscale(keys[3], x, gray_prob)
  x = random_blur(keys[4], x, blur_prob)
  return random_solarize(keys[5], x, solarize_prob)


def config(**overrides) -> ml_collections.ConfigDict:
  """A method's view fields, solo-learn's CIFAR-10 values unless overridden;
  `blur_prob` and `solarize_prob` are per view (BYOL's differ), the last
  entry repeating for views beyond."""
  c = ml_collections.ConfigDict()
  c.size = 0  # Output side in pixels; 0 = the image's.
  c.scale = (0.08, 1.0)  # Crop area fraction range (RandomResizedCrop).
  c.ratio = (3 / 4, 4 / 3)  # Crop aspect ratio range.
  c.flip = True  # Mirror with probability 1/2.
  c.jitter_prob = 0.8  # Chance of colour jitter, ops in random order.
  c.brightness = 0.4  # Jitter strengths (BYOL's, solo-learn's CIFAR-10).
  c.contrast = 0.4
  c.saturation = 0.2
  c.hue = 0.1
  c.gray_prob = 0.2  # Chance of grayscale, after the jitter.
  # Gaussian blur (sigma 0.1-2, kernel 10% of the side) per view; off on
  # CIFAR-10 in SimCLR's, solo-learn's and lightly's recipes.
  c.blur_prob = (0.0,)
  c.solarize_prob = (0.0,)  # Solarize (threshold 128) per view.
  c.update(overrides)
  return c


def views(cfg, rng: jax.Array, images: jax.Array, count: int, size: int = 0,
          scale=None) -> jax.Array:
  """`count` views of each image, view-major ((count * N, s, s, C): rows
  [v * N, (v + 1) * N) are view v), from fields of `config()`; `size` and
  `scale` override the config's (DINO's local crops)."""
  side = size or cfg.size or images.shape[1]
  pick = lambda probs, v: tuple(probs)[min(v, len(probs) - 1)]
  return jnp.concatenate([view(
      key, images, size=side, scale=tuple(scale or cfg.scale),
      ratio=tuple(cfg.ratio), flip=cfg.flip, jitter_prob=cfg.jitter_prob,
      brightness=cfg.brightness, contrast=cfg.contrast,
      saturation=cfg.saturation, hue=cfg.hue, gray_prob=cfg.gray_prob,
      blur_prob=pick(cfg.blur_prob, v),
      solarize_prob=pick(cfg.solarize_prob, v))
                          for v, key in enumerate(jax.random.split(rng, count))])
