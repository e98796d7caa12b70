"""Question answering on bAbI: one answer word out of the vocabulary."""
import functools
import json
import pathlib

from absl import logging
import jax
import numpy as np

from ssl_jax.data import babi
from ssl_jax.data import input_pipeline
from ssl_jax.tasks import classification
from ssl_jax.tasks import Phase
from ssl_jax.tasks import Setup
from ssl_jax.tasks import Task

_INPUTS = ("story", "sentences", "query")


def inputs(batch, rng, train):
  del rng, train  # Word ids go to the model as they are.
  return {k: batch[k] for k in _INPUTS}


def model_kwargs(data: babi.BabiData) -> dict:
  """The sizes the data fixes; each model takes the ones it needs."""
  return {"vocab_size": len(data.vocab), "story_maxlen": data.story_maxlen,
          "query_maxlen": data.query_maxlen,
          "sentence_maxlen": data.sentence_maxlen,
          "memory_size": data.memory_size}


def load(config) -> babi.BabiData:
  """The configured task, or with babi_task=0 every task found, jointly."""
  task = config.input.babi_task
  if not task:
    data_dir = config.input.data_dir or babi.default_babi_dir()
    task = babi.available_tasks(data_dir, config.input.babi_size)
    if not task:  # Raises, saying where it looked.
      babi.find_task_files(data_dir, 1, config.input.babi_size)
  # A config without `tokens` reads text as the Keras example does.
  return babi.load_babi(config.input.data_dir or None, task,
                        config.input.babi_size, config.input.memory_size or None,
                        config.input.get("tokens", "keras"))


def hold_out(train: dict, val_size: int, seed: int,
             last: bool = False) -> np.ndarray:
  """Indices of `val_size` training questions of each task: the last ones of
  its file (`last`, the authors' code) or drawn from `seed` (a joint run
  holds out the same share of every task)."""
  n = len(train["label"])
  order = (np.arange(n)[::-1] if last
           else np.random.default_rng(seed).permutation(n))
  tasks = train.get("task", np.zeros(len(order), np.int32))[order]
  return np.sort(np.concatenate(
      [order[tasks == t][:val_size] for t in np.unique(tasks)]))


def linear_start_end(history: list[dict]) -> int | None:
  """The 0-based epoch where linear start (LS) is over, i.e. how many epochs
  it ran; None while it goes on.

  Sukhbaatar et al.: no memory softmax until the validation loss stops
  falling. LS ends after the first epoch whose val loss is not below the
  epoch before's (NaN included), for good: no later record, and no other
  split's, can change that, so a resumed run decides alike and the test set
  cannot steer it.
  """
  losses = [r["val_loss"] for r in history]
  for i in range(1, len(losses)):
    if not losses[i] < losses[i - 1]:
      return i + 1
  return None


def phase(config, epoch: int, history: list[dict]) -> Phase:
  """MemN2N's linear start in `epoch`, from the records of the epochs before.

  LS ends on the validation loss ('val_loss', the paper's text) or after
  `linear_start_epochs` ('epochs'; the authors' MemN2N-babi-matlab code: 20
  epochs, 30 jointly). It runs at `linear_start_lr_scale` times the learning
  rate (the paper's 0.005 for 0.01; the code's 1: 0.005 throughout);
  afterwards the phase sets linear_start=False explicitly, so each epoch
  record says which way it trained.
  """
  if config.linear_start == "off":
    return Phase()
  end = (config.linear_start_epochs if config.linear_start == "epochs"
         else linear_start_end(history))
  if end is None or epoch < end:
    return Phase({"linear_start": True}, config.linear_start_lr_scale)
  return Phase({"linear_start": False})


def setup(config, workdir, write: bool) -> Setup:
  """bAbI's train/test files; `input.val_size` questions of train held out
  (drawn from `config.seed`) for tuning, as bAbI has no validation set."""
  del workdir, write
  needs = {"epochs": ("linear_start_epochs", "linear_start_lr_scale"),
           "val_loss": ("linear_start_lr_scale",)}.get(config.linear_start, ())
  missing = [f for f in needs if f not in config]
  if missing:
    raise ValueError(f"linear_start={config.linear_start!r} needs the config "
                     f"fields {missing}: use configs/memnet.py:paper,"
                     f"ls={config.linear_start}, which has them.")
  if config.linear_start == "val_loss" and not config.input.val_size:
    raise ValueError("linear_start='val_loss' switches on the validation "
                     "loss: set input.val_size > 0 (the test loss would tune "
                     "on the test set).")
  data = load(config)
  pad = lambda a: input_pipeline.pad_eval(a, config.input.eval_batch_size)
  val = (hold_out(data.train, config.input.val_size, config.seed,
                  config.input.val_split == "last")
         if config.input.val_size else np.zeros(0, np.int64))
  train = np.setdiff1d(np.arange(len(data.train["label"])), val)
  splits = {"train": jax.tree.map(lambda a: a[train], data.train),
            "test": pad(data.test)}
  if config.input.val_size:
    splits["val"] = pad(jax.tree.map(lambda a: a[val], data.train))

  def report(predict, _, workdir):
    show_predictions(predict, data, config.report_examples,
                     pathlib.Path(workdir) / "predictions.txt")
    if "task" in data.test:  # Training error too: it tells fit from transfer.
      for split, arrays in (("test", data.test), ("train", splits["train"])):
        write_per_task(predict, arrays, config.input.eval_batch_size,
                       pathlib.Path(workdir) / f"per_task_{split}.json", split)

  return Setup(Task(inputs, classification.loss), splits,
               model_kwargs(data), report, functools.partial(phase, config))


def describe(arrays: dict, i: int, vocab: babi.Vocab) -> tuple[str, str]:
  """The story and question of example `i`, as text without padding."""
  words = lambda ids: " ".join(vocab.decode(ids[ids > 0]))
  return words(arrays["story"][i]), words(arrays["query"][i])


def show_predictions(predict, data: babi.BabiData, n: int, path: pathlib.Path):
  """Prints and saves the first `n` test stories with prediction and truth."""
  if not n:
    return
  batch = jax.tree.map(lambda a: a[:n], data.test)
  logits, _ = predict(inputs(batch, None, False))
  guesses = np.asarray(logits).argmax(-1)
  lines = []
  for i in range(min(n, len(guesses))):
    story, question = describe(data.test, i, data.vocab)
    truth, guess = (data.vocab.word(batch["label"][i]),
                    data.vocab.word(guesses[i]))
    lines += [f"Story: {story}", f"Question: {question}",
              f"Prediction: {guess} | Truth: {truth} | "
              f"{'correct' if guess == truth else 'WRONG'}", ""]
  path.write_text("\n".join(lines))
  for line in lines:
    logging.info(line)


def per_task_accuracy(guesses: np.ndarray, arrays: dict) -> dict[int, float]:
  """{task: accuracy} of the predicted answer ids of a joint split."""
  right = guesses == arrays["label"]
  return {int(t): float(right[arrays["task"] == t].mean())
          for t in np.unique(arrays["task"])}


def write_per_task(predict, arrays: dict, batch_size: int, path,
                   split: str = "test"):
  """Each task's accuracy on a split (a joint run's table), to `path` and
  the log."""
  guesses = np.concatenate([
      np.asarray(predict(inputs(jax.tree.map(
          lambda a: a[i:i + batch_size], arrays), None, False))[0]).argmax(-1)
      for i in range(0, len(arrays["label"]), batch_size)])
  accuracy = per_task_accuracy(guesses, arrays)
  path.write_text(json.dumps(accuracy, indent=1))
  for task, a in accuracy.items():
    logging.info("task %d: %s accuracy %.4f", task, split, a)
