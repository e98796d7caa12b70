"""bAbI question answering through the training loop, reports and ask mode."""
import json

import pytest

from ssl_jax.tools import ask
from ssl_jax import train
from ssl_jax.tasks import babi_qa

import helpers

BABI_TEST = (helpers.ROOT.parent / "shared" / "data" / "babi" /
             "tasks_1-20_v1-2" / "en-10k" / "qa1_single-supporting-fact_test.txt")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A short MemN2N run on task 1 (2 epochs of 20 steps, 200 held out), the
  first epoch with linear start."""
  workdir = tmp_path_factory.mktemp("memn2n")
  config = helpers.load_config("memnet", "model=memn2n,task=1,quick")
  config.input.val_size = 200
  config.linear_start_epochs = 1
  train.train_and_evaluate(config, workdir)
  return workdir


def test_linear_start_phase():
  config = helpers.load_config("memnet", "model=memn2n,task=1,quick")
  config.linear_start_epochs = 3
  setup = babi_qa.setup(config, None, False)
  assert [setup.model_phase(e) for e in (0, 2, 3, 10)] == [
      {"linear_start": True}, {"linear_start": True}, {}, {}]


def _first_answers(n):
  """Answers of the first `n` questions of the raw test file."""
  answers = []
  for line in BABI_TEST.read_text().splitlines():
    if "\t" in line:
      answers.append(line.split("\t")[1])
  return answers[:n]


def test_training_writes_metrics_and_predictions(workdir):
  records = [json.loads(l) for l in (workdir / "metrics.jsonl").open()]
  assert [r["epoch"] for r in records] == [1, 2]
  assert {"val_accuracy", "test_accuracy", "train_loss"} <= set(records[-1])
  assert records[-1]["train_loss"] < records[0]["train_loss"] * 1.5
  lines = (workdir / "predictions.txt").read_text().splitlines()
  truths = [l.split("Truth: ")[1].split(" |")[0] for l in lines
            if l.startswith("Prediction:")]
  assert truths == _first_answers(5)
  assert lines[1] == "Question: Where is John ?"
  assert "val" in (workdir / "summary.txt").read_text()


def test_ask_answers_with_attention_and_names_unknown_words(workdir):
  answer_fn, data, model = ask.load(workdir)
  story = "Mary went to the kitchen.\nJohn moved to the garden."
  text = ask.answer(answer_fn, data, model, story, "Where is Mary?")
  lines = text.splitlines()
  assert lines[0].split(": ")[1] in data.vocab.words
  assert lines[2].endswith("Mary went to the kitchen.")
  assert lines[3].endswith("John moved to the garden.")
  # Three hops of attention per sentence, each a distribution over the two.
  hops = [[float(w) for w in l.split()[:3]] for l in lines[2:4]]
  for h in range(3):
    assert abs(hops[0][h] + hops[1][h] - 1) < 0.02
  message = ask.answer(answer_fn, data, model, "Mary flew to the kitchen.",
                       "Where is Marie?")
  assert "flew" in message and "Marie" in message and "Mary" in message
