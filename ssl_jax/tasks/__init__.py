"""Tasks: the data, how a batch becomes model input, and the loss.

`config.task` names a built-in ('classification', 'babi_qa', 'pretext_mix')
or the import path of a module of your own (ssl_jax/plugins.py) whose
`setup(config, workdir, write)` returns a `Setup`:
  task.expand(batch, rng, train) -> batch   (optional: the examples the model
    sees, e.g. each image in four rotations, with their targets)
  task.inputs(batch, rng, train) -> model input   (augmentation happens here)
  task.loss(outputs, batch, axis_name) -> (loss, metrics)
  data: {split: {name: host array}}, with 'train' and eval splits ('test',
    'val'), eval splits padded with a 0/1 'mask';
  model_kwargs: what the data fixes about the model (classes, vocabulary);
  report(predict, data, workdir): writes task-specific reports after training;
  phase(epoch, history) -> Phase: the model fields and learning-rate factor
    of that (0-based) epoch, from the records of the epochs before it (so a
    resumed run decides alike), for schedules such as MemN2N's linear start;
  monitor(variables) -> {metric: value}: extra numbers of each epoch's
    record from the model's variables (e.g. the k-NN accuracy, knn.py);
  streams: ((examples, batch size), ...): each step takes `batch size`
    examples from each consecutive block of the train arrays (labeled and
    unlabeled pools); None = one stream of `input.batch_size`.
Metrics are dicts of [sum, count] pairs, so they add up across steps,
devices and hosts; a metric's value is sum / count.
"""
import dataclasses
from typing import Any, Callable, NamedTuple

from ssl_jax import plugins


class Task(NamedTuple):
  inputs: Callable[..., Any]
  loss: Callable[..., Any]
  expand: Callable[..., Any] | None = None
  # State the task's methods keep across steps (an EMA teacher): its start
  # from the model's {'params', 'batch_stats'}, and its next value
  # update_state(state, variables, step=, teacher=, axis_name=) from the
  # variables after optimizer step `step` (1 for the first) and `teacher`'s
  # outputs of that step. With it, `loss` takes the state as a fourth
  # argument. It is saved and restored with the run.
  init_state: Callable[[dict], Any] | None = None
  update_state: Callable[..., Any] | None = None
  # teacher(apply_fn, state, inputs, rng, train) -> outputs: teacher networks
  # kept in the state, run on the model inputs without gradient; the step
  # puts their outputs in the batch as 'teacher' before `loss` reads it.
  teacher: Callable[..., Any] | None = None


@dataclasses.dataclass(frozen=True)
class Phase:
  """A stretch of training: model fields over the config's, and a factor on
  the learning-rate schedule."""
  model: dict = dataclasses.field(default_factory=dict)
  learning_rate_scale: float = 1.0


class Setup(NamedTuple):
  task: Task
  data: dict
  model_kwargs: dict
  report: Callable[..., None] | None = None
  phase: Callable[[int, list[dict]], Phase] | None = None
  streams: tuple[tuple[int, int], ...] | None = None
  monitor: Callable[[dict], dict] | None = None


def schedule_length(config, streams) -> tuple[int, int]:
  """(steps per epoch, total steps): `config.steps_per_epoch`, else one pass
  over the largest stream of ((examples, batch size), ...)."""
  per_epoch = config.steps_per_epoch or max(
      max(n // b for n, b in streams if b), 1)
  return per_epoch, per_epoch * config.num_epochs


def setup(config, workdir, write: bool) -> Setup:
  return plugins.load("task", config.task, "task").setup(config, workdir,
                                                         write)
