"""Extension points: a config names each plug-in by a short name or an import path.

A built-in goes by its short name ('rotation', 'resnet', 'cifar10'); anything
else by its import path: a module ('my_lab.pretexts.context'), whose
conventional attribute below is the plug-in, or 'module:attribute'
('my_lab.models:TinyNet'). The name is resolved from the config alone, by
importing, so every process that reads a run's `config.json` (training,
resume, `predict`, `ask`, a self-training teacher, an experiment's
subprocess, every host of a multi-process run) finds the same plug-in, and a
new one is one module outside the package with no edit inside it. Its
package must be importable in each of those processes (installed, or on
PYTHONPATH).

kind       config field              the plug-in                      attribute
pretext    pretext.<key>.name        module: get_config, spec,        (module)
                                     transform, loss
                                     (ssl_jax/pretext/__init__.py)
model      model.name,               flax.linen.Module class          Model
           model.backbone            (ssl_jax/models/__init__.py)
dataset    input.name                data.registry.DatasetSpec        DATASET
task       task                      module with setup(config,        (module)
                                     workdir, write) (tasks/__init__)
optimizer  optimizer.name            fn(learning_rate, config) ->     optimizer
                                     optax.GradientTransformation
schedule   optimizer.schedule        fn(config, total_steps,          schedule
                                     steps_per_epoch) -> optax.Schedule
norm       model.norm (and the       fn(train, axis_name, momentum,   norm
           backbone's)               epsilon, num_groups, dtype) ->
                                     a layer constructor
"""
import importlib
from typing import Any

# kind -> {short name: 'module[:attribute]'}.
BUILTIN = {
    "pretext": {n: f"ssl_jax.pretext.{n}"
                for n in ("rotation", "jigsaw", "exemplar", "fixmatch", "simclr",
                          "byol", "dino")},
    "model": {
        "core_cnn": "ssl_jax.models.core_cnn:CoreCNN",
        "efficientnet": "ssl_jax.models.efficientnet:EfficientNet",
        "memnet_keras": "ssl_jax.models.memnet:MemNetKeras",
        "memn2n": "ssl_jax.models.memnet:MemN2N",
        "multihead": "ssl_jax.models.multihead:MultiHead",
        "resnet": "ssl_jax.models.resnet:ResNet",
        "wide_resnet": "ssl_jax.models.wide_resnet:WideResNet",
    },
    "dataset": {n: f"ssl_jax.data.registry:{n.upper()}"
                for n in ("cifar10", "fashion_mnist", "stl10", "svhn")},
    "task": {n: f"ssl_jax.tasks.{n}"
             for n in ("classification", "babi_qa", "pretext_mix")},
    "optimizer": {n: f"ssl_jax.train.optim:{n}" for n in (
        "adam", "adamw", "sgd", "momentum", "rmsprop", "adadelta")},
    "schedule": {n: f"ssl_jax.train.optim:{n}"
                 for n in ("constant", "cosine", "fixmatch_cosine", "step")},
    "norm": {n: f"ssl_jax.models.norms:{n}" for n in (
        "batch", "layer", "group", "instance", "rms", "none")},
}
# The attribute a module named without ':attribute' provides (None: the
# module itself is the plug-in).
ATTRIBUTE = {"pretext": None, "model": "Model", "dataset": "DATASET",
             "task": None, "optimizer": "optimizer", "schedule": "schedule",
             "norm": "norm"}
# What a module-valued plug-in must define.
REQUIRED = {"pretext": ("get_config", "spec", "transform", "loss"),
            "task": ("setup",)}


def names(kind: str) -> list[str]:
  """The built-in short names of `kind`."""
  return sorted(BUILTIN[kind])


def is_import_path(name: str) -> bool:
  return "." in name or ":" in name


def load(kind: str, name: str, field: str = "") -> Any:
  """The plug-in of `kind` that `name` names (see the module doc).

  `field` (e.g. 'model.backbone') only makes errors say where the name came
  from. Raises ValueError for an unknown short name, an import path that
  does not import or lacks the attribute.
  """
  where = f" ({field})" if field else ""
  builtin = BUILTIN[kind]
  if name in builtin:
    target = builtin[name]
  elif isinstance(name, str) and is_import_path(name):
    target = name
  else:
    raise ValueError(
        f"Unknown {kind} {name!r}{where}; built in: {', '.join(sorted(builtin))}"
        f"; or give the import path of a module of your own (e.g. "
        f"my_lab.{kind}s.mine, see ssl_jax/plugins.py).")
  module_name, _, attribute = target.partition(":")
  try:
    module = importlib.import_module(module_name)
  except ImportError as e:
    raise ValueError(
        f"{kind} {name!r}{where}: cannot import {module_name!r} ({e}). A "
        "plug-in's package must be importable in every process that reads "
        "the run (installed, or on PYTHONPATH).") from e
  attribute = attribute or ATTRIBUTE[kind]
  if attribute is None:
    missing = [n for n in REQUIRED.get(kind, ())
               if not callable(getattr(module, n, None))]
    if missing:
      raise ValueError(f"{kind} {name!r}{where}: module {module_name!r} lacks "
                       f"{missing}; a {kind} module defines "
                       f"{list(REQUIRED[kind])}.")
    return module
  if not hasattr(module, attribute):
    raise ValueError(f"{kind} {name!r}{where}: module {module_name!r} has no "
                     f"{attribute!r}; a {kind} module defines `{attribute}`, "
                     "or name it as 'module:attribute'.")
  return getattr(module, attribute)


def check(kind: str, name: str, field: str = "") -> str | None:
  """None if `name` loads as a `kind`, else the error's message."""
  try:
    load(kind, name, field)
  except ValueError as e:
    return str(e)
  return None
