"""`config.profile_steps`: a jax.profiler trace of a few training steps.

The trace lands in workdir/profile (plugins/profile/<run>/*.xplane.pb), which
TensorBoard's profile plugin opens: `tensorboard --logdir=WORKDIR/profile`
with `pip install tensorboard-plugin-profile`.
"""
import pathlib

from absl import logging
import jax


class StepTrace:
  """Traces steps first .. last - 1 of `(first, last)`; () traces nothing.

  `at(step, state)` is called before each step; the trace stops once step
  `last` is reached (after the traced steps' results are ready) or at
  `close`.
  """

  def __init__(self, steps, workdir: pathlib.Path, is_main: bool):
    steps = tuple(steps or ())
    if steps and not (len(steps) == 2 and 0 <= steps[0] < steps[1]):
      raise ValueError(f"profile_steps must be (first, last) with 0 <= first "
                       f"< last, or () for none; got {steps}.")
    self.steps = steps if is_main else ()
    self.directory = workdir / "profile"
    self.active = False

  def at(self, step: int, state):
    if not self.steps:
      return
    if step == self.steps[0] and not self.active:
      jax.block_until_ready(state)  # Earlier steps stay out of the trace.
      jax.profiler.start_trace(str(self.directory))
      self.active = True
      logging.info("Profiling steps %d-%d into %s.", self.steps[0],
                   self.steps[1] - 1, self.directory)
    elif step == self.steps[1] and self.active:
      jax.block_until_ready(state)
      self.close()

  def close(self):
    if self.active:
      jax.profiler.stop_trace()
      self.active = False
      logging.info("Profile written to %s.", self.directory)
