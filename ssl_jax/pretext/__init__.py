"""Pretext tasks: self-supervised objectives as plug-ins, by name.

A pretext task is one module (or any object) with these names:

  get_config() -> ml_collections.ConfigDict
      Its fields and their defaults; `weight` (its loss weight w_k) is one.
  head(cfg) -> heads.HeadSpec fields: {'outputs': int, 'hidden': tuple,
      'concat': int}
      The head it needs on the backbone's features. `concat` > 1 joins the
      features of that many consecutive examples before the head (jigsaw's
      tiles of one puzzle).
  transform(cfg, images, rng, train) -> views
      On the device, inside the jitted step. `images` is the (B, H, W, C)
      batch (uint8 or float on the 0-255 scale; cropped and flipped when
      training). `rng` is None at evaluation, where the transform must be
      deterministic. Returns a dict with
        'images': (N * concat, h, w, C) the examples the backbone sees;
        'target': (N, ...) what the head should predict (any pytree leaf);
        'source': (N,) int32, which batch image each head row comes from;
        'identity' (optional): (N,) bool, rows whose example is the batch
          image itself (rotation by 0): the class head then reads those
          rows instead of a separate pass over the batch.
  loss(cfg, outputs, views, mask, axis_name) -> (loss, metrics)
      `outputs` (N, head outputs) float32; `mask` (N,) 0/1 (0 on padding);
      loss normalised by the global count (see ssl_jax.losses); metrics a
      dict of [sum, count] pairs, reported as '<name>_<metric>'.

Optional: AUGMENTED = False makes `transform` receive the batch before the
crop and flip (jigsaw: a crop's zero border would tell where a tile sits).

`register(name, pretext)` adds one without editing the package; the ones
here load lazily by name.
"""
import importlib
from typing import Any

_BUILTIN = {"rotation": "ssl_jax.pretext.rotation",
            "jigsaw": "ssl_jax.pretext.jigsaw",
            "exemplar": "ssl_jax.pretext.exemplar"}
_REGISTERED: dict[str, Any] = {}
_NAMES = ("get_config", "head", "transform", "loss")


def register(name: str, pretext: Any) -> None:
  """Makes `pretext` (an object with the names above) available as `name`."""
  missing = [n for n in _NAMES if not callable(getattr(pretext, n, None))]
  if missing:
    raise TypeError(f"Pretext {name!r} lacks {missing}; a pretext task "
                    f"defines {list(_NAMES)} (see ssl_jax/pretext/__init__.py).")
  _REGISTERED[name] = pretext


def get(name: str) -> Any:
  if name in _REGISTERED:
    return _REGISTERED[name]
  if name in _BUILTIN:
    return importlib.import_module(_BUILTIN[name])
  raise ValueError(f"Unknown pretext task {name!r}; known: {names()}.")


def names() -> list[str]:
  return sorted({*_BUILTIN, *_REGISTERED})
