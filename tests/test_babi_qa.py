"""bAbI question answering through the training loop, reports and ask mode;
Sukhbaatar et al.'s protocol: linear start, step schedule, run selection."""
import json
import math

import jax
import numpy as np
import pytest

from lib import selection
from ssl_jax import config_check
from ssl_jax.data import babi
from ssl_jax.models import memnet
from ssl_jax.tasks import babi_qa
from ssl_jax.tasks import Phase
from ssl_jax.tools import ask
from ssl_jax.train import loop
from ssl_jax.train import optim

import helpers

BABI_TEST = (helpers.ROOT.parent / "shared" / "data" / "babi" /
             "tasks_1-20_v1-2" / "en-10k" / "qa1_single-supporting-fact_test.txt")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A short MemN2N run on task 1 (3 epochs of 20 steps, 200 held out) with
  linear start until the val loss stops falling (the paper's text). From
  epoch 2 the step schedule's learning rate (0.01 * 1e-30 ** epoch) moves no
  float32 parameter, so the val loss stays put and LS ends after epoch 2."""
  workdir = tmp_path_factory.mktemp("memn2n")
  config = helpers.load_config("memnet", "model=memn2n,task=1,quick")
  config.num_epochs = 3
  config.input.val_size = 200
  config.linear_start = "val_loss"
  config.linear_start_lr_scale = 0.5  # A field of the 'paper' variants.
  config.optimizer.learning_rate = 0.01
  config.optimizer.decay_every_epochs = 1
  config.optimizer.decay_begin_epochs = 0
  config.optimizer.decay_factor = 1e-30
  loop.train_and_evaluate(config, workdir)
  return workdir


def _records(workdir):
  return [json.loads(l) for l in (workdir / "metrics.jsonl").open()]


def _encode_numpy(e, ids, pe, span=0):
  """Sentence vectors word by word: sum_j l_kj * e[w_j], with the paper's
  l_kj = (1 - j/J) - (k/d)(1 - 2j/J), J = the sentence's length (pe='paper'),
  the authors' code's 1 + 4(k - (d+1)/2)(j - (J+1)/2)/(dJ), J = span
  ('code'), or l = 1 (pe=None: bag of words)."""
  out = np.zeros(ids.shape[:-1] + e.shape[-1:])
  d = e.shape[-1]
  k = np.arange(1, d + 1)
  for i in np.ndindex(ids.shape[:-1]):
    words = [w for w in ids[i] if w]
    for j, w in enumerate(words, 1):
      big_j = len(words)
      if pe == "paper":
        weight = (1 - j / big_j) - k / d * (1 - 2 * j / big_j)
      elif pe == "code":
        weight = 1 + 4 * (k - (d + 1) / 2) * (j - (span + 1) / 2) / (d * span)
      else:
        weight = 1
      out[i] += weight * e[w]
  return out


# Memory 0 empty (padding), memory 1 one word, memory 2 three.
_X = {"sentences": np.array([[[0, 0, 0], [0, 3, 0], [1, 5, 2]]], np.int32),
      "query": np.array([[2, 4, 0]], np.int32)}


@pytest.mark.parametrize("pe", [None, "paper", "code"])
def test_linear_start_hop_matches_numpy(pe):
  """Two hops of adjacent MemN2N without the softmax (the paper's separate
  TE tables, PE or not)."""
  vocab, length, memories, dim, hops = 6, 3, 3, 4, 2
  model = memnet.MemN2N(vocab, length, memories, embed_dim=dim, hops=hops,
                        position_encoding=pe is not None,
                        position_formula=pe or "paper", time_words=False,
                        linear_start=True)
  x = _X
  params = model.init(jax.random.key(0), x)["params"]
  logits, out = model.apply({"params": params}, x)

  embeds = [np.asarray(params[f"embeds_{k}"]["embedding"])
            for k in range(hops + 1)]
  temporal = [np.asarray(params[f"temporal_{k}"]) for k in range(hops + 1)]
  bag = lambda e, ids: _encode_numpy(e, ids, pe, span=length)
  recency = np.arange(memories)[::-1]  # 0 = the latest sentence.
  valid = (x["sentences"][0] != 0).any(-1)
  u = bag(embeds[0], x["query"][0])  # B = A^1.
  for k in range(hops):  # A^k = embeds[k], C^k = embeds[k + 1].
    m = bag(embeds[k], x["sentences"][0]) + temporal[k][recency]
    c = bag(embeds[k + 1], x["sentences"][0]) + temporal[k + 1][recency]
    p = np.where(valid, m @ u, 0.)  # Linear start: raw scores, no softmax.
    np.testing.assert_allclose(out["attention"][0, k], p, rtol=1e-5,
                               atol=1e-7)
    u = u + p @ c
  expected = embeds[hops] @ u  # W^T = C^K, with the nil row at zero.
  expected[0] = 0.
  np.testing.assert_allclose(logits[0], expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mask", [True, False])
def test_softmax_hop_and_empty_memories_match_numpy(mask):
  """One hop with the softmax: empty slots left out (mask) or zero memories
  with score 0 (the authors' code); bag of words, no TE."""
  model = memnet.MemN2N(6, 3, 3, embed_dim=4, hops=1, position_encoding=False,
                        temporal_encoding=False, mask_empty_memories=mask)
  params = model.init(jax.random.key(0), _X)["params"]
  params = jax.tree.map(lambda a: 10 * a, params)  # A peaked softmax.
  logits, out = model.apply({"params": params}, _X)
  a, c = (np.asarray(params[f"embeds_{k}"]["embedding"]) for k in (0, 1))
  bag = lambda e, ids: _encode_numpy(e, ids, None)
  u = bag(a, _X["query"][0])
  scores = bag(a, _X["sentences"][0]) @ u  # 0 for the empty slot.
  p = np.exp(scores - scores.max()) * (np.array([0, 1, 1]) if mask else 1)
  p /= p.sum()
  np.testing.assert_allclose(out["attention"][0, 0], p, rtol=1e-5, atol=1e-7)
  expected = c @ (u + p @ bag(c, _X["sentences"][0]))
  expected[0] = 0.  # The nil word's logit.
  np.testing.assert_allclose(logits[0], expected, rtol=1e-5, atol=1e-5)


def _history(val_losses, other=0.):
  """Epoch records with the given val losses; `other` sets every other
  split's numbers."""
  return [{"epoch": i + 1, "val_loss": v, "val_accuracy": 0.5,
           "train_loss": other + i, "test_loss": other - i,
           "test_accuracy": other} for i, v in enumerate(val_losses)]


def test_linear_start_ends_when_val_loss_stops_falling():
  config = helpers.load_config("memnet", "model=memn2n,task=1,paper")
  # Falls for 3 epochs, rises at epoch 4 (0-based 3), then falls again.
  val = [3., 2., 1.5, 1.6, 1., .5]
  on = Phase({"linear_start": True}, 0.5)
  off = Phase({"linear_start": False})
  for other in (0., 7., -3.):  # Train and test numbers change nothing.
    history = _history(val, other)
    assert babi_qa.linear_start_end(history) == 4
    phases = [babi_qa.phase(config, e, history[:e]) for e in range(7)]
    assert phases == [on] * 4 + [off] * 3
  assert babi_qa.linear_start_end(_history([3., 2., 1.])) is None
  assert babi_qa.linear_start_end(_history([3., 3.])) == 2  # Not below.
  assert babi_qa.linear_start_end(_history([3., math.nan, 1.])) == 2
  config.linear_start = "off"
  assert babi_qa.phase(config, 0, []) == Phase()
  # The authors' code: a fixed number of LS epochs, whatever the losses.
  epochs = helpers.load_config("memnet", "model=memn2n,task=1,paper,ls=epochs")
  assert epochs.linear_start_epochs == 20
  history = _history([3.] * 30)
  assert [babi_qa.phase(epochs, e, history[:e]) for e in (0, 19, 20, 29)] == [
      on, on, off, off]
  config.linear_start, config.input.val_size = "val_loss", 0
  with pytest.raises(ValueError, match="input.val_size"):
    babi_qa.setup(config, None, False)


def test_linear_start_switches_in_training(workdir):
  records = _records(workdir)
  assert [r["model.linear_start"] for r in records] == [True, True, False]
  assert records[1]["val_loss"] == records[0]["val_loss"]
  assert babi_qa.linear_start_end(records) == 2
  # LS at half the schedule's rate.
  assert records[0]["learning_rate"] == pytest.approx(0.5 * 0.01)


def test_paper_config_and_step_schedule():
  config = helpers.load_config("memnet", "model=memn2n,task=1,paper")
  config_check.check(config)
  # The paper's 0.01 and clip 40 apply to the loss summed over 32 examples.
  assert (config.optimizer.name, config.num_epochs, config.input.val_size,
          config.input.memory_size, config.input.batch_size,
          config.optimizer.learning_rate, config.optimizer.grad_clip_norm) == (
              "sgd", 100, 1000, 50, 32, 0.32, 1.25)
  steps_per_epoch = 7
  schedule = optim.make_schedule(config.optimizer, 100 * steps_per_epoch,
                                 steps_per_epoch)
  steps = np.arange(100 * steps_per_epoch)
  expected = 0.32 * 0.5 ** np.floor(steps // steps_per_epoch / 25)
  np.testing.assert_allclose(schedule(steps), expected, rtol=1e-6)
  with pytest.raises(ValueError, match="epoch length"):
    optim.make_schedule(config.optimizer, 100)
  # A phase's factor scales the step, on the same optimizer state.
  # Each parameter's gradient is clipped alone: a matrix by its spectral
  # norm (MATLAB's norm()), a vector by its length.
  rng = np.random.default_rng(0)
  params = {"w": np.ones(3, np.float32),
            "m": np.ones((4, 3), np.float32), "small": np.ones(2, np.float32)}
  grads = {"w": np.full(3, 2., np.float32),
           "m": rng.normal(size=(4, 3)).astype(np.float32),
           "small": np.full(2, 0.1, np.float32)}
  full, half = (optim.make_optimizer(config.optimizer, 700, 7, s)
                for s in (1., .5))
  state = full.init(params)
  assert jax.tree.structure(state) == jax.tree.structure(half.init(params))
  updates = half.update(grads, state)[0]
  for k, g in grads.items():
    norm = np.linalg.norm(g, 2)  # Spectral for the matrix.
    np.testing.assert_allclose(
        updates[k], -0.5 * 0.32 * g * min(1., 1.25 / norm), rtol=1e-5)


def _write_run(path, train_accuracy, val_accuracy, val_loss, test_accuracy):
  """metrics.jsonl of a 2-epoch run; epoch 1 is worse everywhere but test."""
  path.mkdir()
  last = {"epoch": 2, "train_accuracy": train_accuracy, "train_loss": 0.1,
          "val_accuracy": val_accuracy, "val_loss": val_loss,
          "test_accuracy": test_accuracy, "test_loss": 1 - test_accuracy}
  first = {**last, "epoch": 1, "train_accuracy": 0., "val_accuracy": 0.,
           "test_accuracy": 1.}
  (path / "metrics.jsonl").write_text(
      "".join(json.dumps(r) + "\n" for r in (first, last)))
  return path


def test_selection_picks_by_val_or_train_error_never_test(tmp_path):
  runs = [_write_run(tmp_path / "s0", 1.0, 0.90, 0.3, 0.99),  # Best test.
          _write_run(tmp_path / "s1", 0.9, 0.95, 0.2, 0.80),
          _write_run(tmp_path / "s2", 0.8, 0.95, 0.1, 0.70),  # Tie: lower loss.
          _write_run(tmp_path / "s3", 0.7, 0.95, 0.1, 0.60)]  # Tie: later.
  picked = selection.pick(runs)
  assert picked["workdir"] == str(runs[2])
  assert picked["test_error"] == pytest.approx(0.3)
  assert picked["val_error"] == pytest.approx(0.05)
  assert selection.pick(runs, by="train")["workdir"] == str(runs[0])
  with pytest.raises(ValueError, match="test"):
    selection.pick(runs, by="test")


def _first_answers(n):
  """Answers of the first `n` questions of the raw test file."""
  answers = []
  for line in BABI_TEST.read_text().splitlines():
    if "\t" in line:
      answers.append(line.split("\t")[1])
  return answers[:n]


def test_training_writes_metrics_and_predictions(workdir):
  records = _records(workdir)
  assert [r["epoch"] for r in records] == [1, 2, 3]
  assert {"val_accuracy", "test_accuracy", "train_loss"} <= set(records[-1])
  assert records[-1]["train_loss"] < records[0]["train_loss"] * 1.5
  lines = (workdir / "predictions.txt").read_text().splitlines()
  truths = [l.split("Truth: ")[1].split(" |")[0] for l in lines
            if l.startswith("Prediction:")]
  assert truths == _first_answers(5)
  assert lines[1] == "Question: where is john"  # The code's tokens.
  assert "val" in (workdir / "summary.txt").read_text()


def test_ask_answers_with_attention_and_names_unknown_words(workdir):
  answer_fn, data, model = ask.load(workdir)
  story = "Mary went to the kitchen.\nJohn moved to the garden."
  text = ask.reply(answer_fn, data, model, story, "Where is Mary?")
  lines = text.splitlines()
  answer = lines[0].split(": ")[1]  # A word or a time word (answer classes).
  assert answer in data.vocab.words or answer.startswith("<time ")
  assert lines[2].endswith("mary went to the kitchen.")
  assert lines[3].endswith("john moved to the garden.")
  # Three hops of attention per sentence; the rest of each hop's
  # distribution goes to the empty memories (in the softmax, as the code).
  hops = [[float(w) for w in l.split()[:3]] for l in lines[2:4]]
  for h in range(3):
    assert 0 < hops[0][h] + hops[1][h] < 1.02
  with pytest.raises(babi.UnknownWordsError) as e:
    ask.reply(answer_fn, data, model, "Mary flew to the kitchen.",
              "Where is Marie?")
  message = str(e.value)
  # In the code's tokens, lower case.
  assert "flew" in message and "marie" in message and "mary" in message
