"""Ask a trained bAbI memory network about a story of your own.

  python -m ssl_jax.tools.ask --workdir=runs/babi/memn2n_task1
  python -m ssl_jax.tools.ask --workdir=DIR --story="Mary went to the kitchen." \
      --question="Where is Mary?"

Interactively: type the story's sentences, an empty line, then the question.
Prints the answer and the attention over the story's sentences. Unknown words
get a message listing them and similar known words.
"""
import json
import pathlib
import sys

from absl import app
from absl import flags
import jax
import ml_collections
import numpy as np

from ssl_jax import checkpointing
from ssl_jax import models
from ssl_jax.data import babi
from ssl_jax.tasks import babi_qa

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained bAbI run.")
_STORY = flags.DEFINE_string("story", None, "Story text (else read stdin).")
_QUESTION = flags.DEFINE_string("question", None, "Question (with --story).")
flags.mark_flag_as_required("workdir")


def load(workdir: pathlib.Path):
  """(answer function, data, model name) for the run in `workdir`."""
  config = ml_collections.ConfigDict(
      json.loads((workdir / "config.json").read_text()))
  data = babi_qa.load(config)
  kwargs = {k: v for k, v in config.model.items() if k != "name"}
  model = models.get_model(config.model.name, babi_qa.model_kwargs(data),
                           **kwargs)
  state = checkpointing.read(workdir / "checkpoints")["state"]
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


def answer(answer_fn, data, model: str, story: str, question: str) -> str:
  """The answer and attention as text; a message for unknown words."""
  try:
    x = babi.encode_example(story, question, data)
  except (babi.UnknownWordsError, ValueError) as e:
    return str(e)
  logits, out = answer_fn(x)
  word = data.vocab.words[int(np.argmax(logits[0]))]
  sentences = [s.strip() for s in story.replace("\n", " ").split(".")
               if s.strip()][-data.memory_size:]
  weights = sentence_attention(model, np.asarray(out["attention"][0]), x,
                               len(sentences))
  lines = [f"Answer: {word}", "Attention (per hop):"]
  lines += [f"  {' '.join(f'{w:.2f}' for w in weights[:, i])}  {s}."
            for i, s in enumerate(sentences)]
  return "\n".join(lines)


def main(_):
  answer_fn, data, model = load(pathlib.Path(_WORKDIR.value))
  if _STORY.value is not None:
    print(answer(answer_fn, data, model, _STORY.value,
                 _QUESTION.value or ""))
    return
  print("Type a story (one sentence per line), an empty line, then a "
        "question. Ctrl-D to quit.")
  while True:
    story = []
    for line in sys.stdin:
      if not line.strip():
        break
      story.append(line.strip())
    question = sys.stdin.readline()
    if not question:
      return
    print(answer(answer_fn, data, model, "\n".join(story), question.strip()))


if __name__ == "__main__":
  app.run(main)
