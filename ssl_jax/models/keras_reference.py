"""The seeds' Keras models, built locally: references for parity tests and
the side-by-side benchmark (`experiments/bench.py`).

Needs the `keras` extra (tensorflow-cpu); nothing in training imports it.
"""
from typing import Sequence


def core_cnn(heads: Sequence[int] = (10, 4), features=(32, 64, 128),
             pool_sizes=(3, 2, 2), dense: int = 1024,
             dropout_rate: float = 0.3, input_shape=(32, 32, 3),
             pool_types=(), convs_per_block: int = 1, kernel_size: int = 3,
             padding: str = "valid"):
  """The seeds' CNN family (SEEDS.md sections 3-4), one logits output per head.

  The same graph as `MultiHead(backbone='core_cnn')` with the same fields
  and `head_dropout_rate=dropout_rate`: blocks of (Conv-ReLU-BN) x
  convs_per_block, a max or average pool, dropout; Dense-ReLU-BN, dropout,
  then a Dense head per entry of `heads`.
  """
  import keras  # pylint: disable=g-import-not-at-top
  from keras import layers  # pylint: disable=g-import-not-at-top
  pooling = {"max": layers.MaxPooling2D, "avg": layers.AveragePooling2D}
  x = inputs = keras.Input(input_shape)
  for f, p, kind in zip(features, pool_sizes,
                        pool_types or ("max",) * len(features)):
    for _ in range(convs_per_block):
      x = layers.Conv2D(f, kernel_size, padding=padding.lower(),
                        activation="relu")(x)
      x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
    x = pooling[kind](p, padding="same")(x)
    x = layers.Dropout(dropout_rate)(x)
  x = layers.Dense(dense, activation="relu")(layers.Flatten()(x))
  x = layers.Dropout(dropout_rate)(
      layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x))
  return keras.Model(inputs, [layers.Dense(n)(x) for n in heads])


def memnet(vocab_size: int, story_maxlen: int, query_maxlen: int,
           match_activation: str = "softmax", dropout_rate: float = 0.3):
  """The `babi_memnn` example's graph (SEEDS.md section 2).

  Returns (probabilities model, logits model), sharing their layers; layer
  names m, c, u, lstm, dense locate the weights for conversion.
  """
  import keras  # pylint: disable=g-import-not-at-top
  from keras import layers  # pylint: disable=g-import-not-at-top
  story = keras.Input((story_maxlen,), dtype="int32")
  query = keras.Input((query_maxlen,), dtype="int32")
  drop = lambda: layers.Dropout(dropout_rate)
  m = drop()(layers.Embedding(vocab_size, 64, name="m")(story))
  c = drop()(layers.Embedding(vocab_size, query_maxlen, name="c")(story))
  u = drop()(layers.Embedding(vocab_size, 64, name="u")(query))
  match = layers.Activation(match_activation)(layers.dot([m, u], axes=(2, 2)))
  response = layers.Permute((2, 1))(layers.add([match, c]))
  answer = layers.LSTM(32, name="lstm")(layers.concatenate([response, u]))
  logits = layers.Dense(vocab_size, name="dense")(drop()(answer))
  probs = layers.Activation("softmax")(logits)
  return (keras.Model([story, query], probs),
          keras.Model([story, query], logits))
