"""Memory networks for bAbI: the Keras `babi_memnn` example and MemN2N.

Both take `x = {'story': (B, L), 'sentences': (B, M, S), 'query': (B, Q)}` word
ids (id 0 is padding; see `ssl_jax.data.babi`), read the keys they need, and
return `(logits over the vocabulary, intermediates)`, where
`intermediates['attention']` is what the model attends with, for display.
"""
import jax
import jax.numpy as jnp
import flax.linen as nn


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
    'matlab': the authors' MemN2N-babi-matlab code, l_kj = 1 + 4(k - (d+1)/2)
      (j - (J+1)/2) / (dJ), J = `span` (the padded length) for every
      sentence: about twice the paper's weights, 1 in the middle dimension.
  The split into a word part and a k/d part lets a sentence vector be two
  vocabulary-sized bags times the embedding (`MemN2N._encode`).
  """
  mask = (ids != 0).astype(jnp.float32)
  j = jnp.cumsum(mask, axis=-1)
  if formula == "paper":
    length = jnp.maximum(mask.sum(-1, keepdims=True), 1.)
    return (1 - j / length) * mask, (2 * j / length - 1) * mask
  if formula != "matlab":
    raise ValueError(f"PE formula must be 'paper' or 'matlab', got "
                     f"{formula!r}.")
  # 1 + 4(k - (d+1)/2)(j - (J+1)/2)/(dJ), split as a_j + (k/d) b_j.
  centred = (j - (span + 1) / 2) / span
  return (1 - 2 * (dim + 1) / dim * centred) * mask, 4 * centred * mask


class MemN2N(nn.Module):
  """End-To-End Memory Network (Sukhbaatar et al., 2015) for bAbI.

  Memories are the story sentences `x['sentences']` (B, M, S), in story order
  with the most recent in the last slot (as `load_babi` lays them out); slots
  whose sentence is all padding are empty.

  Options, each a field:
    weight_tying: 'adjacent' (A^{k+1} = C^k, B = A^1, and W^T = C^K when
      `tie_output`, else a separate W) or 'layerwise' (A^k = A, C^k = C, a
      separate B and W, and u^{k+1} = H u^k + o^k).
    position_encoding: sentence and query vectors weight each word embedding
      by l_j (see `position_weights`); else bag of words.
    position_formula: PE's 'paper' or 'matlab' weights (`position_weights`;
      the latter with J = max(S, query length)).
    mask_empty_memories: True: empty slots are out of the attention; False:
      each is a memory of zeros, in the softmax with score 0 (the authors'
      code), so attention can go to "nothing".
    temporal_encoding: adds T_A(i) / T_C(i) to memory i, indexed by recency
      (0 = the latest sentence), and tied across hops like A and C.
    linear_start: no softmax in the memory layers (the paper's LS; training
      code sets it for the first epochs, then rebuilds with it off).
    random_empty_memories: the paper's random noise (RN). In training, after
      each sentence an empty memory is inserted with this probability; as
      empty memories are masked, that amounts to adding the number of empties
      inserted after a sentence to its recency index (capped at M - 1), drawn
      on device from the 'dropout' rng.
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
  position_formula: str = "paper"
  mask_empty_memories: bool = True
  temporal_encoding: bool = True
  linear_start: bool = False
  random_empty_memories: float = 0.1
  init_stddev: float = 0.1  # The paper's N(0, 0.1) initialization.

  def setup(self):
    if self.weight_tying not in ("adjacent", "layerwise"):
      raise ValueError(f"weight_tying must be 'adjacent' or 'layerwise', got "
                       f"{self.weight_tying!r}.")
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
    self.embeds = [nn.Embed(self.vocab_size, self.embed_dim,
                            embedding_init=init) for _ in range(num_embeds)]
    if self.temporal_encoding:
      self.temporal = [
          self.param(f"temporal_{i}", init, (self.memory_size, self.embed_dim))
          for i in range(max(self.c_index) + 1)]
    if not (self.weight_tying == "adjacent" and self.tie_output):
      self.w = nn.Dense(self.vocab_size, use_bias=False, kernel_init=init)

  def _bags(self, ids, span):
    """Word-weight vectors over the vocabulary, (..., V) each: a sentence's
    encoding is `bag @ E` (+ k/d * `bag_k @ E` with PE). Each table is then
    read by one matmul per batch, and its gradient is a matmul, not a
    scatter of (B, M, S, d) word gradients into the vocabulary."""
    flat = ids.reshape(-1, ids.shape[-1])
    rows = jnp.arange(flat.shape[0])[:, None]

    def bag(weights):  # Padding adds 0 to column 0: weights are 0 there.
      out = jnp.zeros((flat.shape[0], self.vocab_size)).at[rows, flat].add(
          weights.reshape(flat.shape))
      return out.reshape(ids.shape[:-1] + (self.vocab_size,))

    if self.position_encoding:
      a, b = position_weights(ids, self.embed_dim, self.position_formula,
                              span)
      return bag(a), bag(b)
    return bag((ids != 0).astype(jnp.float32)), None

  def _encode(self, bags, table):
    """Sentence vectors: (position-weighted) sums of word embeddings."""
    bag, bag_k = bags
    emb = self.embeds[table].embedding
    out = bag @ emb
    if bag_k is not None:
      k = jnp.arange(1, self.embed_dim + 1, dtype=out.dtype) / self.embed_dim
      out = out + k * (bag_k @ emb)
    return out

  def __call__(self, x, train: bool = False):
    sentences, query = x["sentences"], x["query"]
    num_memories = self.memory_size
    if sentences.shape[1:] != (num_memories, self.sentence_maxlen):
      # Temporal tables have memory_size rows; fixed shapes also keep jit to
      # one compilation.
      raise ValueError(f"Expected sentences (B, {num_memories}, "
                       f"{self.sentence_maxlen}), got {sentences.shape}.")
    valid = (sentences != 0).any(-1)  # (B, M)
    recency = jnp.broadcast_to(jnp.arange(num_memories)[::-1], valid.shape)
    if self.temporal_encoding and train and self.random_empty_memories > 0:
      empties = jax.random.bernoulli(self.make_rng("dropout"),
                                     self.random_empty_memories, valid.shape)
      inserted_after = jnp.cumsum(empties[:, ::-1], axis=1)[:, ::-1]
      recency = jnp.minimum(recency + inserted_after, num_memories - 1)

    span = max(self.sentence_maxlen, query.shape[-1])
    u = self._encode(self._bags(query, span), self.b_index)  # (B, D)
    bags = self._bags(sentences, span)
    # Adjacent tying reads each table as C^k and A^{k+1}: encode it once.
    encoded = {t: self._encode(bags, t)  # (B, M, D) each.
               for t in sorted({*self.a_index, *self.c_index})}
    attention = []
    for hop in range(self.hops):
      m, c = encoded[self.a_index[hop]], encoded[self.c_index[hop]]
      if self.temporal_encoding:
        m = m + self.temporal[self.a_index[hop]][recency]
        c = c + self.temporal[self.c_index[hop]][recency]
      scores = jnp.einsum("bmd,bd->bm", m, u)
      if self.linear_start:
        p = jnp.where(valid, scores, 0.)
      elif self.mask_empty_memories:
        # Multiplying by `valid` zeroes a story with no memories at all.
        p = nn.softmax(jnp.where(valid, scores, -1e30), axis=-1) * valid
      else:  # Empty slots: m = c = 0, so score 0 and nothing to read.
        p = nn.softmax(jnp.where(valid, scores, 0.), axis=-1)
        c = jnp.where(valid[..., None], c, 0.)
      attention.append(p)
      o = jnp.einsum("bm,bmd->bd", p, c)
      u = (self.h(u) if self.weight_tying == "layerwise" else u) + o

    if self.weight_tying == "adjacent" and self.tie_output:
      logits = self.embeds[-1].attend(u)  # W^T = C^K.
    else:
      logits = self.w(u)
    return logits, {"attention": jnp.stack(attention, axis=1),
                    "pre_logits": u}
