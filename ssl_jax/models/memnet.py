"""Memory networks for bAbI: the Keras `babi_memnn` example and MemN2N.

Both take `x = {'story': (B, L), 'sentences': (B, M, S), 'query': (B, Q)}` word
ids (id 0 is padding; see `ssl_jax.data.babi`), read the keys they need, and
return `(logits over the vocabulary, intermediates)`, where
`intermediates['attention']` is what the model attends with, for display.
"""
import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np


class KerasLSTM(nn.Module):
  """Keras's `LSTM(units)` (last output only), in Keras's parameter layout.

  Gates are fused in Keras's order i, f, c, o, so weights copy over as they
  are; initialization is Keras's too: glorot-uniform kernel, orthogonal
  recurrent kernel, zero bias except 1 on the forget gate (unit_forget_bias),
  which keeps the memory open early in training.
  """
  units: int

  @nn.compact
  def __call__(self, x):  # (B, T, F) -> (B, units)
    u = self.units
    kernel = self.param("kernel", nn.initializers.glorot_uniform(),
                        (x.shape[-1], 4 * u))
    recurrent = self.param("recurrent_kernel", nn.initializers.orthogonal(),
                           (u, 4 * u))
    bias = self.param("bias", lambda _, shape: jnp.zeros(shape).at[u:2 * u]
                      .set(1.0), (4 * u,))
    inputs = x @ kernel + bias  # All time steps at once; T is small.
    h = c = jnp.zeros(x.shape[:1] + (u,), x.dtype)
    for t in range(x.shape[1]):
      i, f, g, o = jnp.split(inputs[:, t] + h @ recurrent, 4, axis=-1)
      c = nn.sigmoid(f) * c + nn.sigmoid(i) * jnp.tanh(g)
      h = nn.sigmoid(o) * jnp.tanh(c)
    return h


class MemNetKeras(nn.Module):
  """The layer graph of the Keras example `babi_memnn`, layer for layer.

  m = Embed(story), c = Embed_to_Q(story), u = Embed(query), each with dropout;
  match = act(m u^T) with the activation over the query axis (Keras's softmax
  acts on the last axis); the query-major (match + c) concatenated with u is
  read by an LSTM whose last output, after dropout, gives the logits.
  Embeddings keep padding ids as ordinary words (Keras: mask_zero=False), and
  the LSTM reads the stories padded at the front as Keras does.

  Parameters copy over from Keras one to one, and initialize as Keras's do.
  """
  vocab_size: int
  story_maxlen: int
  query_maxlen: int
  embed_dim: int = 64
  lstm_units: int = 32
  dropout_rate: float = 0.3
  match_activation: str = "softmax"  # Or "relu", the example's variant.
  # Embeddings start uniform in +-embed_init_scale (Keras: 0.05).
  embed_init_scale: float = 0.05

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.match_activation not in ("softmax", "relu"):
      raise ValueError(f"match_activation must be 'softmax' or 'relu', got "
                       f"{self.match_activation!r}.")
    story, query = x["story"], x["query"]
    if story.shape[1:] != (self.story_maxlen,) or query.shape[1:] != (
        self.query_maxlen,):
      # The LSTM input width is story_maxlen + embed_dim, so lengths are fixed.
      raise ValueError(f"Expected story (B, {self.story_maxlen}) and query "
                       f"(B, {self.query_maxlen}), got {story.shape} and "
                       f"{query.shape}.")
    drop = nn.Dropout(self.dropout_rate, deterministic=not train)

    init = lambda key, shape, dtype=jnp.float32: jax.random.uniform(
        key, shape, dtype, -self.embed_init_scale, self.embed_init_scale)

    def embed(ids, features, name):
      return drop(nn.Embed(self.vocab_size, features, name=name,
                           embedding_init=init)(ids))

    m = embed(story, self.embed_dim, "input_encoder_m")  # (B, L, D)
    c = embed(story, self.query_maxlen, "input_encoder_c")  # (B, L, Q)
    u = embed(query, self.embed_dim, "question_encoder")  # (B, Q, D)
    match = jnp.einsum("bld,bqd->blq", m, u)
    match = (nn.softmax(match, axis=-1) if self.match_activation == "softmax"
             else nn.relu(match))
    response = jnp.swapaxes(match + c, 1, 2)  # (B, Q, L)
    answer = jnp.concatenate([response, u], axis=-1)
    h = KerasLSTM(self.lstm_units, name="lstm")(answer)
    logits = nn.Dense(self.vocab_size, name="dense",
                      kernel_init=nn.initializers.glorot_uniform())(drop(h))
    return logits, {"attention": match, "pre_logits": h}


def position_weights(ids: jax.Array, dim: int, formula: str = "paper",
                     span: int = 0) -> tuple[jax.Array, jax.Array]:
  """(a, b) with the PE weight l_kj = a_j + (k/d) b_j, per word.

  j is a word's 1-based position counted from the sentence's first word, so
  the weights do not depend on which side sentences are padded; padding
  gets weight 0. `formula`:
    'paper': Sukhbaatar et al.'s Sec. 4.1, l_kj = (1 - j/J) - (k/d)(1 -
      2j/J), J = the sentence's own word count;
    'code': the authors' MemN2N-babi-matlab code, l_kj = 1 + 4(k - (d+1)/2)
      (j - (J+1)/2) / (dJ), one J = `span` for every sentence and the query
      (the code: the longest one's word count, + 1 for the time word): about
      twice the paper's weights, 1 in the middle dimension.
  The split into a word part and a k/d part lets a sentence vector be two
  vocabulary-sized bags times the embedding (`MemN2N._encode`).
  """
  mask = (ids != 0).astype(jnp.float32)
  j = jnp.cumsum(mask, axis=-1)
  if formula == "paper":
    length = jnp.maximum(mask.sum(-1, keepdims=True), 1.)
    return (1 - j / length) * mask, (2 * j / length - 1) * mask
  if formula != "code":
    raise ValueError(f"PE formula must be 'paper' or 'code', got "
                     f"{formula!r}.")
  # 1 + 4(k - (d+1)/2)(j - (J+1)/2)/(dJ), split as a_j + (k/d) b_j.
  centred = (j - (span + 1) / 2) / span
  return (1 - 2 * (dim + 1) / dim * centred) * mask, 4 * centred * mask


def code_noise_recency(valid: jax.Array, rate: float, blank_u: jax.Array,
                       keys: jax.Array) -> jax.Array:
  """Time index of each memory slot under the authors' code's random noise.

  For n sentences the code draws b uniform in 0..ceil(rate n) - 1 blanks, a
  random permutation of 0..n+b-1, keeps its first n entries capped at M - 1,
  and gives them, sorted, to the sentences: the latest gets the smallest. The
  randomness is explicit: `blank_u` (B,) uniform in [0, 1) picks b, `keys`
  (B, P) uniform (P >= M + ceil(rate M)) ranked give the permutation.
  `valid` (B, M) marks the sentences, which fill the last n slots.
  """
  m = valid.shape[-1]
  n = valid.sum(-1)
  # ceil(n * rate) in float64 as the code computes it (30 * 0.1 > 3).
  most = jnp.asarray(np.ceil(np.arange(m + 1) * rate).astype(np.int32))
  total = n + jnp.floor(blank_u * most[n]).astype(jnp.int32)
  p = jnp.arange(keys.shape[-1])
  perm = jnp.argsort(jnp.where(p < total[:, None], keys, jnp.inf), axis=-1)
  kept = jnp.where(p < n[:, None], jnp.minimum(perm, m - 1), m - 1)
  # Slot s holds the sentence of recency m - 1 - s; empty slots get m - 1.
  return jnp.sort(kept, axis=-1)[:, :m][:, ::-1]


class MemN2N(nn.Module):
  """End-To-End Memory Network (Sukhbaatar et al., 2015) for bAbI.

  Memories are the story sentences `x['sentences']` (B, M, S), in story order
  with the most recent in the last slot (as `load_babi` lays them out); slots
  whose sentence is all padding are empty. Defaults follow the authors'
  MemN2N-babi-matlab code; the paper's text is the other value of each
  option.

  Options, each a field:
    weight_tying: 'adjacent' (A^{k+1} = C^k, B = A^1, and W^T = C^K when
      `tie_output`, else a separate W) or 'layerwise' (A^k = A, C^k = C, a
      separate B and W, and u^{k+1} = H u^k + o^k).
    position_encoding: sentence and query vectors weight each word embedding
      by l_j (see `position_weights`); else bag of words.
    position_formula: PE's 'code' or 'paper' weights (`position_weights`;
      'code' with J = max(S, query length), + 1 with time words).
    mask_empty_memories: False: each empty slot is a memory of zeros, in the
      attention softmax with score 0 (the code), so attention can go to
      "nothing"; True: empty slots are out of it.
    temporal_encoding: adds an embedding of memory i's time index (0 = the
      latest sentence; at most M - 1) to it, tied across hops like A and C.
    time_words: TE as the code: time index t is the word V + t of each
      table (so it is clipped with the words, and an answer class), placed
      at the last PE position J; False: separate tables T_A, T_C (paper).
    linear_start: no softmax in the memory layers (the paper's LS; training
      code sets it for the first epochs, then rebuilds with it off).
    random_empty_memories: the random-noise (RN) rate, in training only.
    random_noise: 'code' (`code_noise_recency`) or 'bernoulli' (the paper's
      "add 10% of empty memories": an empty memory after each sentence with
      that probability, i.e. the count inserted after a sentence added to
      its time index, capped at M - 1). Drawn from the 'dropout' rng.
    nil_gradient: True: the nil word (padding, row 0) reads as zero, as the
      code holds it, so its class has logit 0, and it takes the gradient of
      the nil words that fill the code's fixed-size sentences and empty
      memories, which counts in its table's clipping norm (`_bags`); False:
      padding has no weight and row 0 is the nil class's own output row.
  The paper trains with SGD and gradient clipping at norm 40, i.e.
  `optax.chain(optax.clip_by_global_norm(40.), optax.sgd(...))`.
  """
  vocab_size: int
  sentence_maxlen: int
  memory_size: int
  embed_dim: int = 20
  hops: int = 3
  weight_tying: str = "adjacent"
  tie_output: bool = True
  position_encoding: bool = True
  position_formula: str = "code"
  mask_empty_memories: bool = False
  temporal_encoding: bool = True
  time_words: bool = True
  linear_start: bool = False
  random_empty_memories: float = 0.1
  random_noise: str = "code"
  nil_gradient: bool = True
  init_stddev: float = 0.1  # The paper's N(0, 0.1) initialization.

  def setup(self):
    if self.weight_tying not in ("adjacent", "layerwise"):
      raise ValueError(f"weight_tying must be 'adjacent' or 'layerwise', got "
                       f"{self.weight_tying!r}.")
    if self.random_noise not in ("code", "bernoulli"):
      raise ValueError(f"random_noise must be 'code' or 'bernoulli', got "
                       f"{self.random_noise!r}.")
    init = nn.initializers.normal(self.init_stddev)
    # Hop k reads with (A^k, C^k) = embeds[a_index[k]], embeds[c_index[k]],
    # temporal tables likewise; the query with embeds[b_index].
    if self.weight_tying == "adjacent":
      num_embeds = self.hops + 1
      self.a_index = list(range(self.hops))
      self.c_index = list(range(1, self.hops + 1))
      self.b_index = 0
    else:
      num_embeds = 3
      self.a_index, self.c_index = [0] * self.hops, [1] * self.hops
      self.b_index = 2
      self.h = nn.Dense(self.embed_dim, use_bias=False, kernel_init=init)
    self.in_vocab = self.temporal_encoding and self.time_words
    self.rows = self.vocab_size + (self.memory_size if self.in_vocab else 0)
    self.embeds = [nn.Embed(self.rows, self.embed_dim, embedding_init=init)
                   for _ in range(num_embeds)]
    if self.temporal_encoding and not self.in_vocab:
      self.temporal = [
          self.param(f"temporal_{i}", init, (self.memory_size, self.embed_dim))
          for i in range(max(self.c_index) + 1)]
    if not (self.weight_tying == "adjacent" and self.tie_output):
      self.w = nn.Dense(self.rows, use_bias=False, kernel_init=init)

  def _bags(self, ids, span, length):
    """Word-weight vectors over the table's rows, (..., V) each: a sentence's
    encoding is `bag @ E` (+ k/d * `bag_k @ E` with PE). Each table is then
    read by one matmul per batch, and its gradient is a matmul, not a
    scatter of (B, M, S, d) word gradients into the vocabulary.

    With `nil_gradient`, column 0 holds the weights of the nil words that
    fill the code's `length` word positions after the sentence (its time
    word, where there is one, excepted): their embedding reads as zero, but
    takes their gradient."""
    flat = ids.reshape(-1, ids.shape[-1])
    rows = jnp.arange(flat.shape[0])[:, None]

    def bag(weights, full):  # Padding ids add weight 0 to column 0.
      out = jnp.zeros((flat.shape[0], self.rows)).at[rows, flat].add(
          weights.reshape(flat.shape))
      if self.nil_gradient:
        timed = ((flat != 0).any(-1) & (length > span - self.in_vocab)
                 if self.in_vocab else False)
        out = out.at[:, 0].set(full[:length].sum() - out.sum(-1)
                               - jnp.where(timed, full[span - 1], 0.))
      return out.reshape(ids.shape[:-1] + (self.rows,))

    ones = jnp.ones((span,), jnp.int32)
    if self.position_encoding:
      (a, b), (a_full, b_full) = (
          position_weights(x, self.embed_dim, self.position_formula, span)
          for x in (ids, ones))
      return bag(a, a_full), bag(b, b_full)
    return bag((ids != 0).astype(jnp.float32), ones.astype(jnp.float32)), None

  def _table(self, table):
    """A table's rows; with `nil_gradient` row 0 reads as zero (the code
    resets it after each update) but passes its gradient on to the clip."""
    emb = self.embeds[table].embedding
    if not self.nil_gradient:
      return emb
    return emb.at[0].add(-jax.lax.stop_gradient(emb[0]))

  def _encode(self, bags, table):
    """Sentence vectors: (position-weighted) sums of word embeddings."""
    bag, bag_k = bags
    emb = self._table(table)
    out = bag @ emb
    if bag_k is not None:
      out = out + self._k() * (bag_k @ emb)
    return out

  def _k(self):
    return jnp.arange(1, self.embed_dim + 1) / self.embed_dim

  def _time(self, table, times, span):
    """(B, M, D) time embeddings of the memories' time indices."""
    if not self.in_vocab:
      return self.temporal[table][times]
    weight = 1.
    if self.position_encoding:  # The time word sits at position J = span.
      a, b = position_weights(jnp.ones((span,), jnp.int32), self.embed_dim,
                              self.position_formula, span)
      weight = a[-1] + self._k() * b[-1]
    return weight * self.embeds[table].embedding[self.vocab_size + times]

  def __call__(self, x, train: bool = False):
    sentences, query = x["sentences"], x["query"]
    num_memories = self.memory_size
    if sentences.shape[1:] != (num_memories, self.sentence_maxlen):
      # Temporal tables have memory_size rows; fixed shapes also keep jit to
      # one compilation.
      raise ValueError(f"Expected sentences (B, {num_memories}, "
                       f"{self.sentence_maxlen}), got {sentences.shape}.")
    valid = (sentences != 0).any(-1)  # (B, M)
    times = jnp.broadcast_to(jnp.arange(num_memories)[::-1], valid.shape)
    rate = self.random_empty_memories
    if self.temporal_encoding and train and rate > 0:
      rng = self.make_rng("dropout")
      if self.random_noise == "code":
        most = int(np.ceil(num_memories * rate))
        blank_rng, key_rng = jax.random.split(rng)
        times = code_noise_recency(
            valid, rate, jax.random.uniform(blank_rng, valid.shape[:1]),
            jax.random.uniform(key_rng, (len(valid), num_memories + most)))
      else:
        empties = jax.random.bernoulli(rng, rate, valid.shape)
        inserted_after = jnp.cumsum(empties[:, ::-1], axis=1)[:, ::-1]
        times = jnp.minimum(times + inserted_after, num_memories - 1)

    span = max(self.sentence_maxlen, query.shape[-1]) + self.in_vocab
    # The code's rows: the query's J - 1 (with time words), a memory's J.
    u = self._encode(self._bags(query, span, span - self.in_vocab),
                     self.b_index)  # (B, D)
    bags = self._bags(sentences, span, span)
    # Adjacent tying reads each table as C^k and A^{k+1}: encode it once.
    encoded = {t: self._encode(bags, t)  # (B, M, D) each.
               for t in sorted({*self.a_index, *self.c_index})}
    if self.temporal_encoding:  # Empty slots have no time word.
      encoded = {t: e + valid[..., None] * self._time(t, times, span)
                 for t, e in encoded.items()}
    attention = []
    for hop in range(self.hops):
      m, c = encoded[self.a_index[hop]], encoded[self.c_index[hop]]
      scores = jnp.einsum("bmd,bd->bm", m, u)
      if self.linear_start:
        p = jnp.where(valid, scores, 0.)
      elif self.mask_empty_memories:
        # Multiplying by `valid` zeroes a story with no memories at all.
        p = nn.softmax(jnp.where(valid, scores, -1e30), axis=-1) * valid
      elif self.nil_gradient:  # Empty slots: nil words, m = c = 0.
        p = nn.softmax(scores, axis=-1)
      else:  # Empty slots: m = c = 0, so score 0 and nothing to read.
        p = nn.softmax(jnp.where(valid, scores, 0.), axis=-1)
        c = jnp.where(valid[..., None], c, 0.)
      attention.append(p)
      o = jnp.einsum("bm,bmd->bd", p, c)
      u = (self.h(u) if self.weight_tying == "layerwise" else u) + o

    if self.weight_tying == "adjacent" and self.tie_output:
      logits = u @ self._table(len(self.embeds) - 1).T  # W^T = C^K.
    else:
      logits = self.w(u)
    return logits, {"attention": jnp.stack(attention, axis=1),
                    "pre_logits": u}
