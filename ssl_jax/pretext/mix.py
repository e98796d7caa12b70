"""The pretext tasks of a config and the heads they declare, for the
`pretext_mix` task and for rebuilding its model (ssl_jax.inference)."""
from typing import Any, NamedTuple

from ssl_jax import plugins
from ssl_jax import pretext as pretext_lib
from ssl_jax.models.heads import HeadSpec

BATCH = "image"  # The group of the (augmented) batch images themselves.


class Pretext(NamedTuple):
  """One entry of `config.pretext`: its module, config and declaration."""
  module: Any
  cfg: Any
  spec: pretext_lib.Spec


def pretexts_of(config) -> dict[str, Pretext]:
  """{key: Pretext} for `config.pretext`; each entry's `name` (its key in
  configs written before entries had one) names the plug-in."""
  out = {}
  for key, cfg in config.pretext.items():
    module = plugins.load("pretext", cfg.get("name", key),
                          f"pretext.{key}.name")
    out[key] = Pretext(module, cfg, module.spec(cfg))
  return out


def class_group(pretexts: dict[str, Pretext]) -> str:
  """The group the class head reads: the first pretext whose training views
  mark the untransformed, augmented images (Spec.class_rows), else the batch
  itself. Reading those rows saves a backbone pass over the batch."""
  for name, p in pretexts.items():
    if p.spec.class_rows and not p.spec.raw_images:
      return name
  return BATCH


def heads(config, pretexts: dict, num_classes: int) -> dict:
  """The heads the task declares for `multihead`: class + one per pretext."""
  class_from = class_group(pretexts)
  out = {"class": HeadSpec(num_classes, (BATCH, class_from),
                           tuple(config.classifier.hidden),
                           stop_gradient=config.classifier.probe)}
  for name, p in pretexts.items():
    head = p.spec.head
    out[name] = (HeadSpec(num_classes, (name,), out["class"].hidden,
                          shares="class") if p.spec.reads_class_head else
                 HeadSpec(head.outputs, (name,), tuple(head.hidden),
                          head.concat))
  return out


def stateful(pretexts: dict[str, Pretext]) -> dict[str, Pretext]:
  """The pretexts that keep state of their own (`init_state`)."""
  return {n: p for n, p in pretexts.items() if hasattr(p.module, "init_state")}


def init_state(variables, *, pretexts) -> dict:
  return {n: p.module.init_state(p.cfg, variables)
          for n, p in stateful(pretexts).items()}


def update_state(state, variables, *, pretexts) -> dict:
  return {n: p.module.update_state(p.cfg, state[n], variables)
          for n, p in stateful(pretexts).items()}
