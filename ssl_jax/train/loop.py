"""The training loop: build a run from its config, resume, train epochs,
record, save, report."""
import dataclasses
import functools
import json
import pathlib
import signal
import time
from typing import Any, Callable

from absl import logging
import jax
import numpy as np

from ssl_jax import config_check
from ssl_jax import models
from ssl_jax import tasks
from ssl_jax.data import feeds
from ssl_jax.data import input_pipeline
from ssl_jax.data import rows
from ssl_jax.train import checkpoints
from ssl_jax.train import optim
from ssl_jax.train import parallel
from ssl_jax.train import pretrained
from ssl_jax.train import profiling
from ssl_jax.train import reporting
from ssl_jax.train import step as step_lib
from ssl_jax.train import workdir as workdir_lib


class Preempted(Exception):
  """SIGTERM or Ctrl-C: the state was saved; rerunning the same command
  resumes. `signum` is the signal."""

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.signum = signum


class _Preemption:
  """Turns SIGTERM and a first SIGINT (Ctrl-C) into a flag the loop checks at
  the next step boundary, so it can save and exit; a second SIGINT raises
  KeyboardInterrupt at once (what is saved stays saved)."""

  def __init__(self):
    self.signum = None
    self._previous = {s: signal.signal(s, self._handle)
                      for s in (signal.SIGTERM, signal.SIGINT)}

  @property
  def requested(self) -> bool:
    return self.signum is not None

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    if signum == signal.SIGINT and self.signum == signal.SIGINT:
      raise KeyboardInterrupt
    if self.signum is None:
      self.signum = signum

  def restore(self):
    for s, handler in self._previous.items():
      signal.signal(s, handler)


def _check_finite(sums, step: int, ckpts: checkpoints.Checkpoints):
  loss = float(sums["loss"][0])
  if not np.isfinite(loss):
    raise FloatingPointError(
        f"Training loss became {loss} by step {step}. Stopped before saving. "
        f"{ckpts.last_good()} Lower optimizer.learning_rate or set "
        "optimizer.grad_clip_norm, then rerun to resume from it.")


def _early_stop_metric(config) -> str:
  return config.early_stopping.get("metric", "val_accuracy")


def _early_stop(history: list[dict], config) -> bool:
  patience = config.early_stopping.patience
  if not patience or not history:
    return False
  key = _early_stop_metric(config)
  values = [r[key] for r in history]
  best = int(np.argmin(values) if key.endswith("loss") else np.argmax(values))
  return len(values) - 1 - best >= patience


def evaluate(runner, state, feed, split: str, batch_size: int) -> dict:
  """Metric sums over a whole (padded, masked) eval split of `feed`."""
  n = len(feed.data[split]["label"])
  sums = None
  for batch in feed.batches(split, input_pipeline.eval_indices(n, batch_size)):
    m = runner.eval(state, batch)
    sums = runner.from_device_layout(m) if sums is None else step_lib.add(
        sums, runner.from_device_layout(m))
  return jax.device_get(sums)


@dataclasses.dataclass(frozen=True)
class Run:
  """What `build` makes of a config: fixed for the whole run."""
  config: Any
  workdir: pathlib.Path
  is_main: bool  # Process 0: the one that writes.
  setup: tasks.Setup
  runner: parallel.Runner
  model_for: Callable[[dict], Any]  # Model fields of a phase -> model.
  tx_for: Callable[[float], Any]  # Learning-rate factor of a phase -> tx.
  feed: Any  # feeds.DeviceFeed or feeds.StreamFeed: the batches.
  eval_splits: tuple[str, ...]
  streams: tuple[tuple[int, int], ...]
  sampling: str  # input.sampling: how an epoch draws its batches.
  batch_size: int  # Examples per step, all streams.
  steps_per_epoch: int
  total_steps: int
  schedule: Callable[[int], float]
  train_rng: jax.Array
  data_rng: jax.Array
  zero_sums: dict
  ckpts: checkpoints.Checkpoints


def build(config, workdir: str) -> tuple[Run, step_lib.TrainState]:
  """The task, data on the devices, model, steps and a fresh state."""
  workdir = pathlib.Path(workdir)
  is_main = jax.process_index() == 0
  if is_main:
    workdir.mkdir(parents=True, exist_ok=True)
  setup = tasks.setup(config, workdir, write=is_main)
  if feeds.choose(config, setup.data) == "device":  # Read whole, once.
    setup = setup._replace(data=rows.materialized(setup.data))
  task, data = setup.task, setup.data
  eval_splits = tuple(s for s in ("val", "test") if s in data)
  if config.early_stopping.patience:
    if "val" not in data:
      raise ValueError("early_stopping needs a validation split: set "
                       "input.val_size > 0 (stopping on the test set would "
                       "tune on it).")
    if not _early_stop_metric(config).startswith("val_"):
      raise ValueError(f"early_stopping.metric="
                       f"{_early_stop_metric(config)!r} must be a val_* "
                       "metric: stopping on test metrics would tune on them.")
  model_kwargs = {k: v for k, v in config.model.to_dict().items()
                  if k != "name"}
  if config.parallel == "pmap":
    model_kwargs["axis_name"] = parallel.AXIS
  model_for = lambda phase: models.get_model(
      config.model.name, setup.model_kwargs, **{**model_kwargs, **phase})
  mesh = parallel.make_mesh()
  runner = parallel.Runner(config.parallel, mesh,
                           functools.partial(step_lib.train_step, task=task,
                                             ema_decay=config.ema_decay),
                           functools.partial(step_lib.eval_step, task=task))
  streams = setup.streams or ((len(data["train"]["label"]),
                                config.input.batch_size),)
  batch_size = sum(b for _, b in streams)
  sampling = config.input.get("sampling", "permutation")
  if sampling not in input_pipeline.SAMPLINGS:
    raise ValueError(f"input.sampling must be one of "
                     f"{input_pipeline.SAMPLINGS}, got {sampling!r}.")
  runner.check_batch_size(batch_size, "input.batch_size" if len(streams) == 1
                          else "input.batch_size + unlabeled_batch_size")
  runner.check_batch_size(config.input.eval_batch_size,
                          "input.eval_batch_size")
  steps_per_epoch, total_steps = tasks.schedule_length(config, streams)
  tx_for = lambda scale: optim.make_optimizer(
      config.optimizer, total_steps, steps_per_epoch, scale)
  tx = tx_for(1.0)

  init_rng, train_rng, data_rng = jax.random.split(
      jax.random.key(config.seed), 3)
  sample = jax.tree.map(lambda a: a[:1], data["train"])
  if task.expand is not None:
    sample = task.expand(sample, None, False)
  sample = task.inputs(sample, None, False)
  model = model_for({})
  state = jax.jit(lambda r, x: step_lib.create_train_state(
      r, model, tx, x, bool(config.ema_decay), task.init_state),
                  out_shardings=parallel.replicated(mesh))(init_rng, sample)
  feed = feeds.make(config, runner, data)
  logging.info("Input pipeline: %s.", feed.kind)
  zero_sums = runner.zero_metrics(
      state, feeds.sample_batch(feed, "train", batch_size), train_rng)
  ckpts = checkpoints.Checkpoints(workdir / "checkpoints",
                                    config.keep_checkpoints)
  run = Run(config, workdir, is_main, setup, runner, model_for, tx_for, feed,
            eval_splits, streams, sampling, batch_size, steps_per_epoch,
            total_steps,
            optim.make_schedule(config.optimizer, total_steps,
                                steps_per_epoch), train_rng,
            data_rng, zero_sums, ckpts)
  return run, state


def restore(run: Run, state: step_lib.TrainState) -> tuple[step_lib.TrainState, dict]:
  """The latest checkpoint's state and epoch sums, else a fresh state
  (with `config.init_from`'s backbone) and zero sums."""
  if run.ckpts.latest_step() is not None:
    restored = run.ckpts.restore({"state": state, "epoch_sums": run.zero_sums})
    logging.info("Resumed from %s at step %d.", run.ckpts.directory,
                 int(restored["state"].step))
    return restored["state"], restored["epoch_sums"]
  if run.config.init_from:
    state = pretrained.init_state(state, run.config.init_from).with_ema_reset()
    if run.setup.task.init_state is not None:  # Methods start from it too.
      state = state.replace(method_state=run.setup.task.init_state(
          {"params": state.params, "batch_stats": state.batch_stats}))
    logging.info("Backbone initialised from %s.", run.config.init_from)
  return state, run.zero_sums


def _saved(run: Run, dev_state, sums) -> dict:
  return {"state": run.runner.from_device_layout(dev_state),
          "epoch_sums": sums}


def save(run: Run, step: int, dev_state, sums, history=()):
  """The state, the epoch's sums so far and the epoch records as `step`."""
  run.ckpts.save(step, _saved(run, dev_state, sums), history)


def train_epoch(run: Run, dev_state, sums, step: int, progress=None,
                preemption=None, trace=None, history=()):
  """Steps from `step` to the end of its epoch (or a SIGTERM or Ctrl-C),
  traced where `trace` (a profiling.StepTrace) says; mid-epoch saves hold
  the epoch records `history`.

  Returns (state, metric sums, step reached, whether preempted). A SIGTERM
  during an epoch's last step is left to the caller, which first records
  the epoch.
  """
  epoch = step // run.steps_per_epoch
  indices = input_pipeline.stream_indices(
      jax.random.fold_in(run.data_rng, epoch), run.streams,
      run.steps_per_epoch, run.sampling)
  every = run.config.checkpoint_every_steps
  if trace is not None:
    trace.at(step, dev_state)
  for batch in run.feed.batches("train", indices, step % run.steps_per_epoch):
    dev_state, metrics = run.runner.train(dev_state, batch, run.train_rng)
    sums = step_lib.add(sums, run.runner.from_device_layout(metrics))
    step += 1
    if trace is not None:
      trace.at(step, dev_state)
    if progress is not None and step % run.config.log_every_steps == 0:
      _check_finite(sums, step, run.ckpts)
      s = jax.device_get(sums["loss"])
      progress.log(step, epoch + 1, s[0] / max(s[1], 1))
    if not step % run.steps_per_epoch:
      break
    preempted = preemption is not None and preemption.requested
    if preempted or (every and step % every == 0):
      save(run, step, dev_state, sums, history)
      if preempted:
        return dev_state, sums, step, True
  return dev_state, sums, step, False


def epoch_record(run: Run, dev_state, sums, step: int,
                 phase: tasks.Phase = tasks.Phase()) -> dict:
  """The finished epoch's metrics: training sums and every eval split, with
  the phase's model fields ('model.linear_start': ...).

  The state is checked finite first, so no epoch that cannot be saved is
  recorded.
  """
  _check_finite(sums, step, run.ckpts)
  run.ckpts.check_finite(step, _saved(run, dev_state, sums))
  record = {"epoch": step // run.steps_per_epoch, "step": step,
            "learning_rate": phase.learning_rate_scale * float(
                run.schedule(step - 1)),
            **{f"model.{k}": v for k, v in phase.model.items()},
            **reporting.reduce_metrics(jax.device_get(sums), "train")}
  for s in run.eval_splits:
    record.update(reporting.reduce_metrics(
        evaluate(run.runner, dev_state, run.feed, s,
                 run.config.input.eval_batch_size), s))
    if dev_state.ema is not None:  # The EMA weights, next to the raw ones.
      record.update(reporting.reduce_metrics(
          evaluate(run.runner, dev_state.ema_weights(), run.feed, s,
                   run.config.input.eval_batch_size), f"ema_{s}"))
  if run.setup.monitor is not None:
    state = jax.device_get(run.runner.from_device_layout(dev_state))
    record.update(run.setup.monitor({"params": state.params,
                                     "batch_stats": state.batch_stats}))
  return record


def finish(run: Run, dev_state, history: list[dict]):
  """Task reports, curves and summary in the workdir (process 0)."""
  if not run.is_main:
    return
  if run.setup.report is not None:
    # On the host first: process 0 alone must not run a global computation.
    state = jax.device_get(run.runner.from_device_layout(dev_state))
    run.setup.report(functools.partial(step_lib.predict, state), run.setup.data,
                     run.workdir)
  if history:
    split = run.eval_splits[0]
    reporting.plot_curves(history, split, run.workdir / "curves.png")
    lines = reporting.summary_lines(history, split)
    (run.workdir / "summary.txt").write_text("\n".join(lines) + "\n")
    for line in lines:
      logging.info(line)


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains `config` in `workdir`, resuming from its latest checkpoint.

  Returns the last epoch's metrics record. Raises, leaving the last good
  checkpoint in place: ValueError for a bad config or a refused rerun
  (before the workdir changes), workdir.Busy when another process owns the
  workdir, FloatingPointError when the state diverges (nothing saved), and
  Preempted after a SIGTERM (the state saved at that step).
  """
  config_check.check(config)
  # Process 0 writes the workdir, so it alone owns it.
  lock = workdir_lib.Lock(workdir) if jax.process_index() == 0 else None
  try:
    return _train(config, workdir, lock)
  finally:
    if lock is not None:
      lock.release()


def _train(config, workdir: str, lock: workdir_lib.Lock | None) -> dict:
  start = time.perf_counter()
  trace = profiling.StepTrace(config.profile_steps, pathlib.Path(workdir),
                              jax.process_index() == 0)
  run, state = build(config, workdir)
  state, sums = restore(run, state)
  if lock is not None:  # The rerun is accepted: now the workdir changes.
    lock.accept()
    workdir_lib.write_config(run.workdir, config)
  step = int(state.step)
  log = reporting.MetricsLog(
      run.workdir, run.is_main, resume_step=step,
      saved=run.ckpts.history(step) if step else None)
  # A resumed run counts on from its last record: wall_time_s is the time of
  # the whole run (the unsaved part of an interrupted epoch is not counted).
  earlier = log.history[-1]["wall_time_s"] if log.history else 0
  progress = reporting.Progress(run.total_steps, step, run.batch_size)
  preemption = _Preemption()
  dev_state, phase = run.runner.to_device_layout(state), tasks.Phase()
  try:
    while step < run.total_steps and not _early_stop(log.history, config):
      epoch = step // run.steps_per_epoch
      new = (tasks.Phase() if run.setup.phase is None
             else run.setup.phase(epoch, log.history))
      if new != phase:
        # Same parameters and optimizer state, another apply_fn and tx: the
        # step is traced anew.
        phase = new
        logging.info("epoch %d: phase %s", epoch + 1, phase)
        dev_state = dev_state.replace(
            apply_fn=run.model_for(phase.model).apply,
            tx=run.tx_for(phase.learning_rate_scale))
      dev_state, sums, step, preempted = train_epoch(
          run, dev_state, sums, step, progress, preemption, trace,
          log.history)
      if not preempted:
        record = epoch_record(run, dev_state, sums, step, phase)
        record["wall_time_s"] = round(earlier + time.perf_counter() - start)
        progress.newline()
        logging.info("epoch %d: %s", epoch + 1, json.dumps(record))
        log.add(record)
        sums = run.zero_sums
        save(run, step, dev_state, sums, log.history)
      if preemption.requested and step < run.total_steps:
        name = signal.Signals(preemption.signum).name
        raise Preempted(f"{name}: stopped at step {step} of {run.total_steps}"
                        f", saved in {run.ckpts.directory}; rerun the same "
                        "command to resume.", preemption.signum)
  finally:
    trace.close()
    preemption.restore()
    run.ckpts.close()
    log.close()
  finish(run, dev_state, log.history)
  return log.history[-1] if log.history else {}
