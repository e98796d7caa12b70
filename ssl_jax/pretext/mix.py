"""The pretext tasks of a config and the heads they declare, for the
`pretext_mix` task and for rebuilding its model (ssl_jax.inference)."""
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

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
                          head.concat, module=head.module))
  return out


def stateful(pretexts: dict[str, Pretext]) -> dict[str, Pretext]:
  """The pretexts that keep state of their own (`init_state`)."""
  return {n: p for n, p in pretexts.items() if hasattr(p.module, "init_state")}


def own_variables(variables: dict, name: str) -> dict:
  """The backbone's and pretext `name`'s head's part of the model's
  variables: what its init_state and update_state see."""
  keep = ("backbone", f"{name}_head")
  return {col: {k: v for k, v in tree.items() if k in keep}
          for col, tree in variables.items()}


def init_state(variables, *, pretexts) -> dict:
  return {n: p.module.init_state(p.cfg, own_variables(variables, n))
          for n, p in stateful(pretexts).items()}


def update_state(state, variables, *, step, teacher, axis_name, total_steps,
                 pretexts) -> dict:
  """Each stateful pretext's next state after optimizer step `step` (1 for
  the first), given the teachers' outputs of that step."""
  progress = jnp.minimum(step / max(total_steps, 1), 1.0).astype(jnp.float32)
  return {n: p.module.update_state(p.cfg, state[n], pretext_lib.Update(
      own_variables(variables, n), progress, teacher.get(n), axis_name))
          for n, p in stateful(pretexts).items()}


def teachers(pretexts: dict[str, Pretext]) -> dict[str, Pretext]:
  """The pretexts that keep a teacher network (`teacher`)."""
  return {n: p for n, p in pretexts.items() if hasattr(p.module, "teacher")}


def teacher_outputs(apply_fn, state, inputs, rng, train, *, pretexts) -> dict:
  """{pretext: its teacher's head outputs} on the pretext's first group of
  views, without gradient; training runs them in training mode (batch
  statistics; the teacher's statistics are left as they are)."""
  out = {}
  for name, p in teachers(pretexts).items():
    variables = p.module.teacher(p.cfg, state[name])
    x = {name: inputs[name]}
    if train:
      (heads_out, _), _ = apply_fn(variables, x, train=True,
                                   rngs={"dropout": rng},
                                   mutable=["batch_stats"])
    else:
      heads_out, _ = apply_fn(variables, x, train=False)
    out[name] = jax.lax.stop_gradient(heads_out[name])
  return out
