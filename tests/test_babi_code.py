"""MemN2N as the authors' MemN2N-babi-matlab code runs it, against NumPy
references written from that code's description: its tokens and memory
layout, PE with one J and time words, random noise, learning-rate schedule;
and a short task-16 run that only this protocol fits."""
import glob
import json
import math
import os
import pathlib

import jax
import numpy as np
import pytest

from ssl_jax.data import babi
from ssl_jax.models import memnet
from ssl_jax.train import loop
from ssl_jax.train import optim

import helpers

DATA_DIR = (babi.default_babi_dir() if os.environ.get("SSL_JAX_DATA_DIR")
            else str(helpers.ROOT.parent / "shared" / "data" / "babi"))
EN = pathlib.Path(DATA_DIR) / "tasks_1-20_v1-2" / "en"


def _code_read(path):
  """(sentences, question, answer) per question, as the code reads a file:
  each line lower-cased and split at white space, a word's trailing '.' or
  '?' dropped; the story is the statements since its line 1; the answer is
  the word after the one that ends in '?'."""
  out, story = [], []
  strip = lambda w: w[:-1] if w.endswith((".", "?")) else w
  for line in pathlib.Path(path).read_text().splitlines():
    words = line.lower().split()
    if words[0] == "1":
      story = []
    if "?" not in line:
      story.append([strip(w) for w in words[1:]])
      continue
    end = next(k for k, w in enumerate(words) if w.endswith("?"))
    out.append((list(story), [strip(w) for w in words[1:end + 1]],
                words[end + 1]))
  return out


def test_tokens_are_the_codes_on_every_1k_file():
  for path in sorted(glob.glob(str(EN / "qa*_*.txt"))):
    assert babi.parse_babi(path, "code") == _code_read(path), path


def _pe(d, big_j):
  """(d, J) PE weights of the code: 1 + 4(k - (d+1)/2)(j - (J+1)/2)/(dJ)."""
  k, j = np.arange(1, d + 1)[:, None], np.arange(1, big_j + 1)[None]
  return 1 + 4 * (k - (d + 1) / 2) * (j - (big_j + 1) / 2) / (d * big_j)


@pytest.mark.parametrize("task", [8, 16])
def test_memory_layout_and_encodings_match_numpy(task):
  """Memories: the latest min(50, longest training story) sentences, the
  latest last; encodings, attention and logits of a 2-hop model against the
  code's forward pass in NumPy (one J = longest sentence + 1 for every
  sentence and the query, time word V + t at position J, empty slots at
  score 0, nil logit 0). Task 8: the test split has longer stories (58)
  than training (46)."""
  train_path, test_path = babi.find_task_files(DATA_DIR, task, "1k")
  train, test = _code_read(train_path), _code_read(test_path)
  data = babi.load_babi(DATA_DIR, task, "1k", tokens="code")
  size = min(50, max(len(s) for s, _, _ in train))
  big_j = max(len(x) for s, q, _ in train for x in s + [q]) + 1
  assert data.memory_size == size
  assert max(data.sentence_maxlen, data.query_maxlen) + 1 == big_j
  d, v, n = 6, len(data.vocab), 40
  model = memnet.MemN2N(v, data.sentence_maxlen, size, embed_dim=d, hops=2)
  x = {k: data.test[k][:n] for k in ("sentences", "query")}
  params = model.init(jax.random.key(0), x)["params"]
  params = jax.tree.map(lambda a: 10 * a, params)  # A peaked softmax.
  logits, out = model.apply({"params": params}, x)
  # Tables are (V + M, d): words, then time words; rows as the code's (d, V).
  a = [np.asarray(params[f"embeds_{h}"]["embedding"], np.float64).T
       for h in range(3)]
  pe = _pe(d, big_j)
  ids = lambda words: [data.vocab.ids[w] for w in words]
  for i, (story, question, answer) in enumerate(test[:n]):
    assert data.vocab.words[data.test["label"][i]] == answer
    kept = story[-size:]
    got = [data.vocab.decode(s[s > 0]) for s in data.test["sentences"][i]]
    assert got == [[]] * (size - len(kept)) + kept
    u = sum(pe[:, j] * a[0][:, w] for j, w in enumerate(ids(question)))
    for hop in range(2):  # A = a[hop], C = a[hop + 1].
      mem = np.zeros((2, size, d))  # Empty slots: zero memories.
      for s, sentence in enumerate(kept):
        for t in (0, 1):
          mem[t, s] = sum(pe[:, j] * a[hop + t][:, w]
                          for j, w in enumerate(ids(sentence)))
          time = v + len(kept) - 1 - s  # 0 = the latest sentence.
          mem[t, s] += pe[:, big_j - 1] * a[hop + t][:, time]
      scores = mem[0] @ u
      p = np.exp(scores - scores.max())
      p /= p.sum()
      ours = np.asarray(out["attention"][i, hop])
      np.testing.assert_allclose(  # Ours: empty slots first, latest last.
          np.r_[ours[size - len(kept):], ours[:size - len(kept)]], p,
          rtol=1e-4, atol=1e-6)
      u = u + p @ mem[1]
    expected = a[2].T @ u
    expected[0] = 0.  # The nil word's embedding is held at zero.
    np.testing.assert_allclose(logits[i], expected, rtol=1e-4, atol=1e-4)


def _code_noise(n, size, rate, u, keys):
  """The code's time indices of n sentences (oldest first): b uniform in
  0..ceil(rate n) - 1 blanks (u picks it as randint would), a permutation
  of n + b slots (keys' ranks), its first n capped at size - 1, sorted and
  reversed."""
  blanks = int(u * math.ceil(n * rate))
  rt = np.argsort(keys[:n + blanks])
  rt[rt >= size] = size - 1
  return np.sort(rt[:n])[::-1]


def test_random_noise_matches_the_codes_scheme():
  size, rate = 50, 0.1
  counts = [0, 1, 9, 10, 11, 20, 25, 30, 31, 49, 50] * 20
  rng = np.random.default_rng(0)
  valid = np.arange(size)[None] >= size - np.array(counts)[:, None]
  u = rng.random(len(counts))
  keys = rng.random((len(counts), size + math.ceil(size * rate)))
  times = np.asarray(memnet.code_noise_recency(valid, rate, u, keys))
  for i, n in enumerate(counts):
    np.testing.assert_array_equal(times[i, size - n:],
                                  _code_noise(n, size, rate, u[i], keys[i]))
    if n <= 10:  # randint(ceil(0.1 n)) = randint(1): no blank, ever.
      np.testing.assert_array_equal(times[i, size - n:],
                                    np.arange(n)[::-1])
  # Some stories of 11+ sentences get blanks (the latest sentence > 0).
  assert (times[:, -1][np.array(counts) > 10] > 0).any()


def test_model_noise_only_in_training_and_only_past_ten_sentences():
  """Task 1 stories hold at most 10 sentences: the code's noise leaves them
  alone, the Bernoulli reading of the paper does not."""
  data = babi.load_babi(DATA_DIR, 1, "1k", tokens="code")
  x = {k: data.train[k][:64] for k in ("sentences", "query")}
  model = memnet.MemN2N(len(data.vocab), data.sentence_maxlen,
                        data.memory_size)
  variables = model.init(jax.random.key(0), x)
  apply = lambda m, train: m.apply(variables, x, train=train,
                                   rngs={"dropout": jax.random.key(1)})[0]
  np.testing.assert_allclose(apply(model, True), apply(model, False),
                             atol=1e-6)
  paper = model.clone(random_noise="bernoulli")
  assert not np.allclose(apply(paper, True), apply(paper, False), atol=1e-4)
  long = babi.load_babi(DATA_DIR, 2, "1k", tokens="code")  # Up to 56.
  x = {k: long.train[k][:64] for k in ("sentences", "query")}
  model = memnet.MemN2N(len(long.vocab), long.sentence_maxlen,
                        long.memory_size)
  variables = model.init(jax.random.key(0), x)
  assert not np.allclose(apply(model, True), apply(model, False), atol=1e-4)


@pytest.mark.parametrize("arg,ls,epochs", [("task=1", 20, 100),
                                           ("task=all", 30, 60)])
def test_codes_learning_rate_schedule(arg, ls, epochs):
  """The code: 0.005 (per summed loss) through linear start and after it,
  halved at the start of every 25th epoch after LS (15th jointly)."""
  config = helpers.load_config("memnet", f"model=memn2n,{arg}")
  assert (config.num_epochs, config.linear_start, config.linear_start_epochs,
          config.linear_start_lr_scale) == (ls + epochs, "epochs", ls, 1.0)
  spe, every = 3, 25 if ls == 20 else 15
  schedule = optim.make_schedule(config.optimizer,
                                 config.num_epochs * spe, spe)
  code = [0.005] * ls
  for ep in range(epochs):  # The code: if (ep + 1) % every == 0: halve.
    code.append(code[-1] * (0.5 if (ep + 1) % every == 0 else 1))
  np.testing.assert_allclose(schedule(np.arange(config.num_epochs * spe)),
                             32 * np.repeat(code, spe), rtol=1e-6)


def _final_train_error(variant, workdir):
  config = helpers.load_config("memnet", "model=memn2n,task=16,size=1k" +
                               variant)
  config.input.data_dir = DATA_DIR
  config.num_epochs, config.report_examples = 30, 0
  loop.train_and_evaluate(config, workdir)
  records = (workdir / "metrics.jsonl").read_text().splitlines()
  return 1 - json.loads(records[-1])["train_accuracy"]


def test_task16_1k_fits_with_the_codes_protocol_only(tmp_path):
  """1k task 16 in 30 epochs (the code: 20 of them linear start): the
  code's protocol fits it (train error < 5%), the paper's text does not
  (> 30%)."""
  assert _final_train_error("", tmp_path / "code") < 0.05
  assert _final_train_error(",paper", tmp_path / "paper") > 0.30


def test_gradients_match_the_codes_fixed_size_sentences():
  """The code's sentences are J word slots: the words, nil (id 0, held at
  zero) to fill, and the time word V + t in slot J; the query J - 1 slots.
  Every slot takes gradient, the nil ones included (which counts in the
  clipping norm). A direct gather-and-sum of that layout, differentiated,
  against ours (front-padded ids, bags, nil row read as zero)."""
  v, s, m, d = 7, 3, 4, 5
  big_j = s + 1
  sentences = np.array([[[0, 0, 0], [0, 3, 2], [1, 5, 2], [0, 0, 4]],
                        [[0, 0, 0], [0, 0, 0], [0, 0, 0], [6, 1, 1]]])
  query = np.array([[0, 2, 4], [3, 3, 5]])
  label = np.array([5, 6])
  model = memnet.MemN2N(v, s, m, embed_dim=d, hops=2)
  x = {"sentences": sentences, "query": query}
  params = model.init(jax.random.key(0), x)["params"]
  params = jax.tree.map(lambda a: a.at[0].set(0.), params)  # Nil at zero.
  pe = jax.numpy.asarray(_pe(d, big_j).T)  # (J, d)

  def code_layout(ids, slots):  # Words first, then nil up to `slots`.
    words = ids[ids > 0]
    return np.r_[words, np.zeros(slots - len(words), int)]

  mem = np.array([[code_layout(x, big_j) for x in story]
                  for story in sentences])
  for b, story in enumerate(sentences):
    filled = np.flatnonzero(story.any(-1))  # The latest last.
    mem[b, filled, -1] = v + np.arange(len(filled))[::-1]
  q = np.array([code_layout(x, big_j - 1) for x in query])

  def code_loss(tables):
    u = (pe[:-1] * tables[0][q]).sum(1)
    for hop in range(2):
      a, c = ((pe * tables[hop + t][mem]).sum(2) for t in (0, 1))
      p = jax.nn.softmax(jax.numpy.einsum("bmd,bd->bm", a, u))
      u = u + jax.numpy.einsum("bm,bmd->bd", p, c)
    logits = u @ tables[2].T
    return optax_ce(logits, label)

  def our_loss(params):
    return optax_ce(model.apply({"params": params}, x)[0], label)

  tables = [params[f"embeds_{h}"]["embedding"] for h in range(3)]
  expected = jax.grad(code_loss)(tables)
  got = jax.grad(our_loss)(params)
  for h in range(3):
    np.testing.assert_allclose(got[f"embeds_{h}"]["embedding"], expected[h],
                               rtol=1e-4, atol=1e-6)
  assert np.abs(expected[0][0]).sum() > 0  # The nil word's gradient.


def optax_ce(logits, label):
  log_p = jax.nn.log_softmax(logits)
  return -log_p[np.arange(len(label)), label].sum()
