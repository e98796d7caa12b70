"""Ask a trained bAbI memory network about a story of your own.

  python -m ssl_jax.tools.ask --workdir=runs/babi/memn2n_task1
  python -m ssl_jax.tools.ask --workdir=DIR \
      --story="Mary went to the kitchen." --question="Where is Mary?"

Interactively: type the story's sentences (one per line, or several ending in
'.'), an empty line, then the question. Case does not matter. Prints the
answer, the attention over the story's sentences, and the oldest sentences if
the model cannot see them all. A rejected input (unknown words, listed with
similar known ones; an empty story or question) is printed to stderr and
makes the exit status 1 (in interactive mode once the input ends).
"""
import functools
import itertools
import json
import pathlib
import sys

from absl import app
from absl import flags
import jax
import ml_collections
import numpy as np

from ssl_jax import models
from ssl_jax.data import babi
from ssl_jax.tasks import babi_qa
from ssl_jax.train import checkpoints

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained bAbI run.")
_STORY = flags.DEFINE_string("story", None, "Story text (else read stdin).")
_QUESTION = flags.DEFINE_string("question", None, "Question (with --story).")
flags.mark_flag_as_required("workdir")
# What `babi.encode_example` raises for an input it rejects.
_REJECTED = (babi.UnknownWordsError, ValueError)


def load(workdir: pathlib.Path):
  """(answer function, data, model name) for the run in `workdir`."""
  config = ml_collections.ConfigDict(
      json.loads((workdir / "config.json").read_text()))
  data = babi_qa.load(config)
  kwargs = {k: v for k, v in config.model.items() if k != "name"}
  model = models.get_model(config.model.name, babi_qa.model_kwargs(data),
                           **kwargs)
  state = checkpoints.read(workdir / "checkpoints")["state"]
  variables = {"params": state["params"]}
  return (jax.jit(lambda x: model.apply(variables, x, train=False)), data,
          config.model.name)


def sentence_attention(model: str, attention: np.ndarray, x: dict,
                       n_sentences: int) -> np.ndarray:
  """Attention per story sentence, oldest first: (hops, n_sentences)."""
  if model == "memn2n":  # (hops, memory slots), the latest slot last.
    return attention[:, attention.shape[1] - n_sentences:]
  # Keras graph: (story words, query words); mean over the query, sum per
  # sentence (sentences end at '.', the story is padded at the front).
  per_word = attention.mean(-1)
  story = x["story"][0]
  ends = np.flatnonzero(story == story[-1])  # Ids of '.' end sentences.
  starts = np.concatenate([[np.flatnonzero(story)[0]], ends[:-1] + 1])
  sums = np.array([per_word[s:e + 1].sum() for s, e in zip(starts, ends)])
  return (sums / sums.sum())[None, -n_sentences:]


def seen(model: str, sentences: list, data: babi.BabiData) -> tuple[int, str]:
  """How many of the latest `sentences` the model sees, and its limit."""
  if model == "memn2n":
    return (min(len(sentences), data.memory_size),
            f"the last {data.memory_size} sentences")
  # The Keras graph reads the last story_maxlen words: a sentence whose end
  # is among them counts, as in `sentence_attention`.
  before = np.cumsum([0] + [len(s) for s in sentences[::-1]])[:-1]
  return (int((before < data.story_maxlen).sum()),
          f"the last {data.story_maxlen} words")


def reply(answer_fn, data, model: str, story: str, question: str) -> str:
  """The answer, its attention per sentence, and the sentences dropped.

  Raises:
    babi.UnknownWordsError, ValueError: for a rejected input, see
      `babi.encode_example`.
  """
  x = babi.encode_example(story, question, data)
  sentences = [data.vocab.match_case(s) for s in babi.parse_story(story)]
  logits, out = answer_fn(x)
  word = data.vocab.word(np.argmax(logits[0]))
  kept, limit = seen(model, sentences, data)
  weights = sentence_attention(model, np.asarray(out["attention"][0]), x,
                               kept)
  lines = [f"Answer: {word}", "Attention (per hop):"]
  lines += [f"  {' '.join(f'{w:.2f}' for w in weights[:, i])}  "
            f"{babi.join_tokens(s)}" for i, s in enumerate(sentences[-kept:])]
  dropped = sentences[:len(sentences) - kept]
  if dropped:
    lines.append(f"Dropped the {len(dropped)} oldest of {len(sentences)} "
                 f"sentences (the model sees {limit}):")
    lines += [f"  {babi.join_tokens(s)}" for s in dropped]
  return "\n".join(lines)


def read_stories(lines):
  """(story, question) pairs of `lines`: story lines, an empty line, then the
  question line; a story the input ends in has question None."""
  lines = iter(lines)
  while True:
    story = "".join(itertools.takewhile(str.strip, lines))
    question = next(lines, None)
    if story or question is not None:
      yield story, question
    if question is None:
      return


def show(ask, story: str, question: str | None) -> bool:
  """Prints `ask(story, question)`, or to stderr why it was rejected."""
  if question is None:
    message = "the input ended before the question of its last story."
  else:
    try:
      print(ask(story, question))
      return True
    except _REJECTED as e:
      message = str(e)
  print(f"Rejected: {message}", file=sys.stderr)
  return False


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}.")
  if _STORY.value is None and _QUESTION.value is not None:
    raise app.UsageError("--question needs --story.")
  ask = functools.partial(reply, *load(pathlib.Path(_WORKDIR.value)))
  if _STORY.value is not None:
    if not show(ask, _STORY.value, _QUESTION.value or ""):
      sys.exit(1)
    return
  print("Type a story (one sentence per line), an empty line, then a "
        "question. Ctrl-D to quit.")
  results = [show(ask, s, q) for s, q in read_stories(sys.stdin)]
  if not all(results):
    sys.exit(f"{results.count(False)} of {len(results)} inputs rejected.")


if __name__ == "__main__":
  app.run(main)
