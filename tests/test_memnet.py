"""Tests for the bAbI memory networks: Keras parity, training, sharding."""
import functools
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ssl_jax.data import babi
from ssl_jax.models import get_model
from ssl_jax.models import keras_reference
from ssl_jax.models import memnet

DATA_DIR = (babi.default_babi_dir() if os.environ.get("SSL_JAX_DATA_DIR")
            else str(pathlib.Path(__file__).resolve().parents[2]
                     / "shared" / "data" / "babi"))
VOCAB, STORY, QUERY = 22, 68, 4  # Task 1 en-10k.
# These tests spend far longer compiling than running: skip LLVM's passes.
_jit = functools.partial(
    jax.jit, compiler_options={"xla_backend_optimization_level": 0})


@pytest.fixture(scope="module")
def batch():
  data = babi.load_babi(DATA_DIR, 1)
  return {k: jnp.asarray(v[:64]) for k, v in data.train.items()}, data


@pytest.fixture(scope="module")
def models(batch):
  """name -> (model, initial params), initialized once for the module."""
  x, data = batch
  models = {
      "memnet_keras": get_model("memnet_keras", vocab_size=len(data.vocab),
                                story_maxlen=data.story_maxlen,
                                query_maxlen=data.query_maxlen),
      "memn2n": get_model("memn2n", vocab_size=len(data.vocab),
                          sentence_maxlen=data.sentence_maxlen,
                          memory_size=data.memory_size),
  }
  return {name: (model, _jit(model.init)(jax.random.key(0), x)["params"])
          for name, model in models.items()}


def _keras_to_flax(model):
  """Copies the Keras example's weights into MemNetKeras's variables."""
  get = lambda name: model.get_layer(name).get_weights()
  kernel, recurrent, bias = get("lstm")
  lstm = {"kernel": kernel, "recurrent_kernel": recurrent, "bias": bias}
  dense_kernel, dense_bias = get("dense")
  return {"params": {
      "input_encoder_m": {"embedding": get("m")[0]},
      "input_encoder_c": {"embedding": get("c")[0]},
      "question_encoder": {"embedding": get("u")[0]},
      "lstm": lstm,
      "dense": {"kernel": dense_kernel, "bias": dense_bias}}}


@pytest.mark.parametrize("match_activation", ["softmax", "relu"])
def test_keras_parity(match_activation):
  keras_probs, keras_logits = keras_reference.memnet(VOCAB, STORY, QUERY,
                                                  match_activation)
  model = memnet.MemNetKeras(VOCAB, STORY, QUERY,
                             match_activation=match_activation)
  x = {"story": np.zeros((1, STORY), np.int32),
       "query": np.zeros((1, QUERY), np.int32)}
  # Same initial LSTM bias as Keras (1 on the forget gate).
  np.testing.assert_array_equal(
      model.init(jax.random.key(0), x)["params"]["lstm"]["bias"],
      keras_probs.get_layer("lstm").get_weights()[2])
  rng = np.random.default_rng(0)
  # Large weights, so that a swapped gate or axis cannot hide in noise.
  for w in keras_probs.weights:
    w.assign(rng.normal(0., 0.5, w.shape).astype(np.float32))
  story = rng.integers(0, VOCAB, (8, STORY)).astype(np.int32)
  query = rng.integers(0, VOCAB, (8, QUERY)).astype(np.int32)
  x = {"story": story, "query": query}
  variables = _keras_to_flax(keras_probs)
  init = jax.eval_shape(model.init, jax.random.key(0), x)
  assert jax.tree.map(np.shape, variables) == jax.tree.map(np.shape, init)
  logits, _ = _apply(model, variables, x)
  expected = keras_logits([story, query], training=False)
  np.testing.assert_allclose(logits, np.asarray(expected), atol=1e-5,
                             rtol=1e-5)
  np.testing.assert_allclose(jax.nn.softmax(logits),
                             np.asarray(keras_probs([story, query])),
                             atol=1e-5)


def _train_step(model, tx):
  def step(params, opt_state, x, key):
    def loss_fn(p):
      logits, _ = model.apply({"params": p}, x, train=True,
                              rngs={"dropout": key})
      return optax.softmax_cross_entropy_with_integer_labels(
          logits, x["label"]).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss
  return _jit(step)


def _apply(model, variables, x, train=False, rngs=None):
  # Jitted: eager op-by-op dispatch compiles every op, which is slower.
  return _jit(model.apply, static_argnames="train")(variables, x,
                                                    train=train, rngs=rngs)


def _eval_loss(model, params, x):
  logits, _ = _apply(model, {"params": params}, x)
  return optax.softmax_cross_entropy_with_integer_labels(
      logits, x["label"]).mean()


@pytest.mark.parametrize("name", ["memnet_keras", "memn2n"])
def test_training_lowers_loss(batch, models, name):
  x, _ = batch
  model, params = models[name]
  tx = optax.chain(optax.clip_by_global_norm(40.), optax.adam(1e-2))
  opt_state = tx.init(params)
  step = _train_step(model, tx)
  before = _eval_loss(model, params, x)
  for i in range(40):
    params, opt_state, _ = step(params, opt_state, x, jax.random.key(i))
  after = _eval_loss(model, params, x)
  assert after < 0.6 * before, (before, after)


@pytest.mark.parametrize("name", ["memnet_keras", "memn2n"])
def test_sharded_step_matches_one_device(batch, models, name):
  """Dropout (and MemN2N's random empty memories) on in both runs.

  SGD, not Adam: some MemN2N gradients are exactly 0 in exact arithmetic (a
  word ending every sentence adds the same vector to all memories, which the
  softmax ignores), and Adam's g / sqrt(v) scales their ~1e-12 rounding noise,
  which depends on the summation order, up to ~lr-sized updates.
  """
  x, _ = batch
  model, params = models[name]
  tx = optax.sgd(0.5)
  step = _train_step(model, tx)

  def run(params, x):
    opt_state = tx.init(params)
    for i in range(2):
      params, opt_state, _ = step(params, opt_state, x, jax.random.key(i))
    return params

  single = run(params, x)
  mesh = Mesh(jax.devices(), ("data",))
  assert mesh.size == 4
  sharded = run(jax.device_put(params, NamedSharding(mesh, P())),
                jax.device_put(x, NamedSharding(mesh, P("data"))))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5),
               single, sharded)


def test_memn2n_masks_padding_and_ignores_padding_side(batch, models):
  x, data = batch
  model, params = models["memn2n"]
  model = model.clone(mask_empty_memories=True)  # The paper's reading.
  variables = {"params": params}
  logits, inter = _apply(model, variables, x)
  attention = inter["attention"]
  assert attention.shape == (64, model.hops, data.memory_size)
  empty = ~(x["sentences"] != 0).any(-1)
  assert empty.any() and not (attention * empty[:, None]).any()
  np.testing.assert_allclose(attention.sum(-1), 1., atol=1e-5)
  # Moving each sentence's padding to the back changes nothing.
  back = jnp.asarray([[np.concatenate([s[s != 0], s[s == 0]]) for s in story]
                      for story in np.asarray(x["sentences"])])
  query = jnp.asarray([np.concatenate([q[q != 0], q[q == 0]])
                       for q in np.asarray(x["query"])])
  moved, _ = _apply(model, variables, {"sentences": back, "query": query})
  np.testing.assert_allclose(moved, logits, atol=1e-5)


@pytest.mark.parametrize("options", [
    {"weight_tying": "layerwise"},
    {"tie_output": False, "position_encoding": False},
    {"temporal_encoding": False, "linear_start": True, "hops": 1},
])
def test_memn2n_options(batch, models, options):
  x, data = batch
  model = models["memn2n"][0].clone(**options)
  variables = _jit(model.init)(jax.random.key(0), x)
  logits, inter = _apply(model, variables, x, train=True,
                         rngs={"dropout": jax.random.key(1)})
  time_words = model.temporal_encoding and model.time_words  # Classes too.
  assert logits.shape == (64, len(data.vocab) + time_words * data.memory_size)
  assert inter["attention"].shape == (64, model.hops, data.memory_size)
  # Linear start flips on the same parameters.
  flipped, _ = _apply(model.clone(linear_start=not model.linear_start),
                       variables, x)
  assert np.isfinite(flipped).all()


def test_memn2n_random_empty_memories_only_in_training(batch, models):
  """The paper's reading (the code's noise leaves task 1's stories of at
  most 10 sentences alone: tests/test_babi_code.py)."""
  x, _ = batch
  model, params = models["memn2n"]
  model = model.clone(random_noise="bernoulli")
  variables = {"params": params}
  rngs = {"dropout": jax.random.key(1)}
  evaluated, _ = _apply(model, variables, x)
  trained, _ = _apply(model, variables, x, train=True, rngs=rngs)
  plain, _ = _apply(model.clone(random_empty_memories=0.), variables, x,
                    train=True, rngs=rngs)
  np.testing.assert_allclose(plain, evaluated, atol=1e-6)
  assert not np.allclose(trained, evaluated, atol=1e-4)
