"""Tasks: the data, how a batch becomes model input, and the loss.

`setup(config, workdir, write)` returns a `Setup` for `config.task`:
  task.expand(batch, rng, train) -> batch   (optional: the examples the model
    sees, e.g. each image in four rotations, with their targets)
  task.inputs(batch, rng, train) -> model input   (augmentation happens here)
  task.loss(outputs, batch, axis_name) -> (loss, metrics)
  data: {split: {name: host array}}, with 'train' and eval splits ('test',
    'val'), eval splits padded with a 0/1 'mask';
  model_kwargs: what the data fixes about the model (classes, vocabulary);
  report(predict, data, workdir): writes task-specific reports after training;
  model_phase(epoch) -> {field: value}: model fields for that (0-based) epoch,
    for schedules such as MemN2N's linear start;
  streams: ((examples, batch size), ...): each step takes `batch size`
    examples from each consecutive block of the train arrays (labeled and
    unlabeled pools); None = one stream of `input.batch_size`.
Metrics are dicts of [sum, count] pairs, so they add up across steps,
devices and hosts; a metric's value is sum / count.
"""
import importlib
from typing import Any, Callable, NamedTuple


class Task(NamedTuple):
  inputs: Callable[..., Any]
  loss: Callable[..., Any]
  expand: Callable[..., Any] | None = None


class Setup(NamedTuple):
  task: Task
  data: dict
  model_kwargs: dict
  report: Callable[..., None] | None = None
  model_phase: Callable[[int], dict] | None = None
  streams: tuple[tuple[int, int], ...] | None = None


_TASKS = {"classification": "ssl_jax.tasks.classification",
          "babi_qa": "ssl_jax.tasks.babi_qa",
          "pretext_mix": "ssl_jax.tasks.pretext_mix"}


def names() -> list[str]:
  return sorted(_TASKS)


def setup(config, workdir, write: bool) -> Setup:
  if config.task not in _TASKS:
    raise ValueError(f"Unknown task {config.task!r}; known: {sorted(_TASKS)}.")
  return importlib.import_module(_TASKS[config.task]).setup(config, workdir,
                                                            write)
