"""Config values checked before a run writes anything.

Rules go by a field's name wherever it sits (`norm` under `model` or
`model.backbone_config`), so task configs get them without listing fields.
Every broken field is reported, one line each: field, value, what is allowed.
"""
import math
import re

from ssl_jax import plugins

# (regex on the dotted path, test, what is allowed).
_POSITIVE = (lambda v: isinstance(v, int) and v > 0, "an integer > 0")
_NON_NEGATIVE = (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0")
_RULES = [
    (r"(^|\.)(batch_size|eval_batch_size)$", *_POSITIVE),
    (r"^(num_epochs|log_every_steps|keep_checkpoints)$", *_POSITIVE),
    (r"(^|\.)(unlabeled_batch_size|steps_per_epoch|checkpoint_every_steps|"
     r"warmup_steps|val_size|max_test_examples|image_size|memory_size|"
     r"patience|crop_padding|decay_every_epochs|linear_start_epochs)$",
     *_NON_NEGATIVE),
    (r"^knn\.k$", *_NON_NEGATIVE),
    (r"^input\.(stream_threads|stream_prefetch)$", *_POSITIVE),
    (r"^input\.device_memory_gb$", lambda v: v >= 0, "a finite number >= 0"),
    (r"^ema_decay$", lambda v: 0 <= v < 1, "in [0, 1)"),
    (r"(^|\.)labels_per_class$",
     lambda v: isinstance(v, int) and (v == -1 or v > 0), "-1 (all) or > 0"),
    (r"(^|\.)temperature$", lambda v: v > 0, "a finite number > 0"),
    (r"(^|\.)(learning_rate|weight|weight_decay|grad_clip_norm|margin|"
     r"decay_factor|linear_start_lr_scale)$",
     lambda v: v >= 0, "a finite number >= 0"),
    (r"(^|\.)(dropout_rate|head_dropout_rate|drop_connect_rate)$",
     lambda v: 0 <= v < 1, "in [0, 1)"),
    (r"(^|\.)drop_fraction$", lambda v: 0 <= v <= 1, "in [0, 1]"),
]


# Allowed values of string fields.
_CHOICES = {
    r"^parallel$": ("jit", "pmap"),
    r"^linear_start$": ("off", "val_loss", "epochs"),
    r"(^|\.)dtype$": ("float32", "bfloat16"),
    r"^input\.source$": ("auto", "files", "tfds"),
    r"^input\.pipeline$": ("auto", "device", "stream"),
    r"^input\.standardize_stats$": ("data", "imagenet", "lite"),
}


def _plugins(config) -> dict[str, str]:
  """Fields that name a plug-in (ssl_jax/plugins.py) -> its kind."""
  out = {r"^task$": "task", r"^optimizer\.name$": "optimizer",
         r"^optimizer\.schedule$": "schedule",
         r"^model\.(name|backbone)$": "model", r"(^|\.)norm$": "norm",
         r"^pretext\.[^.]+\.name$": "pretext"}
  if config.get("task") != "babi_qa":  # bAbI's names are its own.
    out[r"^input\.name$"] = "dataset"
  return out


def _leaves(node, prefix=""):
  for key, value in node.items():
    path = f"{prefix}{key}"
    if hasattr(value, "items"):
      yield from _leaves(value, path + ".")
    else:
      yield path, value


def problems(config) -> list[str]:
  """One line per field whose value is not allowed."""
  out = []
  kinds = _plugins(config)
  for path, value in _leaves(config):
    if isinstance(value, float) and not math.isfinite(value):
      out.append(f"{path}={value!r}: must be a finite number.")
      continue
    for pattern, ok, allowed in _RULES:
      if re.search(pattern, path) and not isinstance(value, (str, bool,
                                                             type(None))):
        if not ok(value):
          out.append(f"{path}={value!r}: must be {allowed}.")
    for pattern, allowed in _CHOICES.items():
      if re.search(pattern, path) and value not in allowed:
        out.append(f"{path}={value!r}: must be one of {', '.join(allowed)}.")
    for pattern, kind in kinds.items():
      if re.search(pattern, path) and isinstance(value, str):
        error = plugins.check(kind, value, path)
        if error:
          out.append(error)
  return out


def check(config):
  """Raises ValueError listing every field that `problems` finds."""
  found = problems(config)
  if len(found) == 1:
    raise ValueError(f"Bad config (nothing was written): {found[0]}")
  if found:
    raise ValueError("Bad config (nothing was written):\n  "
                     + "\n  ".join(found))
