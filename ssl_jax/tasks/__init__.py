"""Tasks: how a batch becomes model input, and the loss and metrics.

A task is a pair of pure functions used inside the jitted steps:
  inputs(batch, rng, train) -> model input      (augmentation happens here)
  loss(outputs, batch, axis_name) -> (loss, metrics)
Metrics are dicts of [sum, count] pairs, so they add up across steps,
devices and hosts; a metric's value is sum / count.
"""
from typing import Any, Callable, NamedTuple


class Task(NamedTuple):
  inputs: Callable[..., Any]
  loss: Callable[..., Any]
