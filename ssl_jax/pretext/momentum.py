"""The momentum teacher of self-distillation methods (BYOL, DINO).

The teacher is a copy of the backbone and the method's head, moved after
every optimizer step to
  teacher <- m * teacher + (1 - m) * student,
with m rising from `base` to 1 on BYOL's cosine schedule over the run,
  m = 1 - (1 - base) * (cos(pi * progress) + 1) / 2.
Its BatchNorm statistics follow the same average. The teacher never gets a
gradient: it lives in the method's state, not among the parameters.
"""
import jax
import jax.numpy as jnp


def cosine_momentum(base: float, progress: jax.Array) -> jax.Array:
  """The teacher's momentum when `progress` (0 -> 1) of the run is done."""
  return 1.0 - (1.0 - base) * (jnp.cos(jnp.pi * progress) + 1.0) / 2.0


def init_state(variables) -> dict:
  """A teacher starting as the student (`variables`: the backbone's and the
  method's head's, as update_state gets them)."""
  # Copies: the training state is donated as one tree, so the teacher may
  # not share the parameters' buffers.
  return {"teacher": jax.tree.map(jnp.copy, variables)}


def update_state(base: float, state: dict, update) -> dict:
  """The state after one step: the teacher moved towards the student."""
  m = cosine_momentum(base, update.progress)
  return {**state, "teacher": jax.tree.map(
      lambda t, s: m * t + (1.0 - m) * s, state["teacher"],
      update.variables)}
