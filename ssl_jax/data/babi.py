"""bAbI v1.2 question answering (Weston et al., 2015): reader, vocab, arrays.

Each question sees every story sentence before it; the vocabulary is the
sorted set of train + test words (answers included, a multi-word answer such
as "apple,football" being one word) with id 0 for padding, and sequences are
padded at the front as Keras's `pad_sequences` does. Tokens (`TOKENS`) follow
the MemN2N authors' code (lower case, no punctuation) or the Keras example
`babi_memnn` (case kept, '.' and '?' tokens).
"""
import dataclasses
import difflib
import glob
import itertools
import os
import re
from typing import Sequence

import numpy as np

RELEASE = "tasks_1-20_v1-2"
SIZE_DIRS = {"1k": "en", "10k": "en-10k"}
MAX_MEMORY = 50  # Memory cap of Sukhbaatar et al. (2015) for bAbI.
_URL = "https://s3.amazonaws.com/text-datasets/babi_tasks_1-20_v1-2.tar.gz"


def default_babi_dir() -> str:
  """`$SSL_JAX_DATA_DIR/babi` if set, else `../shared/data/babi` from cwd."""
  root = os.environ.get("SSL_JAX_DATA_DIR")
  if root:
    return os.path.join(root, "babi")
  return os.path.abspath(os.path.join("..", "shared", "data", "babi"))


TOKENS = ("code", "keras")


def tokenize(sentence: str, tokens: str = "keras") -> list[str]:
  """'Mary moved to the bathroom.' -> ['Mary', ..., 'bathroom', '.'] (Keras
  example) or, tokens='code' (MemN2N-babi-matlab: lower case, words split at
  white space, a trailing '.' or '?' dropped), ['mary', ..., 'bathroom']."""
  if tokens == "code":
    return [w for w in (w.rstrip(".?") for w in sentence.lower().split()) if w]
  if tokens != "keras":
    raise ValueError(f"tokens must be one of {TOKENS}, got {tokens!r}.")
  return [t.strip() for t in re.split(r"(\W+)", sentence) if t.strip()]


def _lines(path):
  """(1-based number, stripped text) of each line of the UTF-8 file `path`."""
  with open(path, "rb") as f:
    for lineno, raw in enumerate(f, 1):
      try:
        line = raw.decode("utf-8")
      except UnicodeDecodeError as e:
        raise ValueError(f"{path}, line {lineno}: byte {raw[e.start]:#04x} at "
                         f"column {e.start + 1} is not UTF-8: {raw.strip()!r}"
                         ) from None
      yield lineno, line.strip()


def parse_babi(path, tokens: str = "keras"
               ) -> list[tuple[list[list[str]], list[str], str]]:
  """Reads a bAbI file into (story sentences, question, answer) examples.

  The story of a question is every statement of its story before it (earlier
  questions excluded); a story restarts where line IDs restart at 1. Text is
  split by `tokenize(..., tokens)`; tokens='code' lower-cases answers too.

  Raises:
    ValueError: on a malformed line or a byte that is not UTF-8, naming the
      file and 1-based line number; for a file without questions.
  """
  examples, story, prev_id = [], [], 0
  for lineno, line in _lines(path):
    if not line:
      continue

    def fail(why, line=line, lineno=lineno):
      raise ValueError(f"{path}, line {lineno}: {why}: {line!r}")

    match = re.fullmatch(r"(\d+) +(\S.*)", line)
    if not match:
      fail("expected 'ID text'")
    line_id, text = int(match[1]), match[2]
    if line_id == 1:
      story = []
    elif prev_id == 0 or line_id <= prev_id:
      fail(f"line ID {line_id} after {prev_id}: IDs start at 1 and increase")
    prev_id = line_id
    if "\t" not in text:
      if text.rstrip().endswith("?"):
        fail("question without a tab-separated answer")
      story.append(tokenize(text, tokens))
      continue
    fields = [s.strip() for s in text.split("\t")]
    if len(fields) not in (2, 3) or not fields[0] or not fields[1]:
      fail("expected 'ID question<TAB>answer<TAB>supporting IDs'")
    if len(fields) == 3:
      support = fields[2].split()
      if not all(s.isdecimal() and 1 <= int(s) < line_id for s in support):
        fail("supporting IDs must be integers of earlier lines of the story")
    answer = fields[1].lower() if tokens == "code" else fields[1]
    examples.append((list(story), tokenize(fields[0], tokens), answer))
  # Caught here: an empty split would first fail in training or evaluation.
  if not examples:
    what = "is empty" if prev_id == 0 else "has no questions"
    raise ValueError(f"{path} {what}: a bAbI file needs at least one line "
                     "'ID question<TAB>answer<TAB>supporting IDs'.")
  return examples


def find_task_files(data_dir, task: int, size: str = "10k") -> tuple[str, str]:
  """Paths of task `task`'s train and test files under `data_dir`.

  Looks in `data_dir/tasks_1-20_v1-2/{en,en-10k}`, `data_dir/{en,en-10k}`,
  then `data_dir` itself (e.g. a path to the en-10k folder).
  """
  if size not in SIZE_DIRS:
    raise ValueError(f"size must be one of {sorted(SIZE_DIRS)}, got {size!r}.")
  if not 1 <= task <= 20:
    raise ValueError(f"bAbI tasks are numbered 1 to 20, got {task}.")
  sub = SIZE_DIRS[size]
  data_dir = os.path.abspath(os.path.expanduser(str(data_dir)))
  candidates = [os.path.join(data_dir, RELEASE, sub),
                os.path.join(data_dir, sub)]
  # A folder of the other size holds files of the same names: never read it.
  if os.path.basename(data_dir) not in set(SIZE_DIRS.values()) - {sub}:
    candidates.append(data_dir)
  half = []  # (directory, missing split, file of the other split).
  for directory in candidates:
    found = {split: sorted(glob.glob(os.path.join(
        glob.escape(directory), f"qa{task}_*_{split}.txt")))
             for split in ("train", "test")}
    if all(len(paths) == 1 for paths in found.values()):
      return found["train"][0], found["test"][0]
    if any(len(paths) > 1 for paths in found.values()):
      raise ValueError(f"Several files for bAbI task {task} in {directory}: "
                       f"{found}.")
    half += [(directory, split, found[other][0])
             for split, other in (("train", "test"), ("test", "train"))
             if found[other] and not found[split]]
  get_it = (
      "Download the bAbI v1.2 release tasks_1-20_v1-2.tar.gz (Facebook "
      f"Research; mirror used by the Keras example: {_URL}; "
      "tensorflow_datasets has no bAbI), extract it into a directory DIR and "
      "pass --config.input.data_dir=DIR (or set SSL_JAX_DATA_DIR and extract "
      "into $SSL_JAX_DATA_DIR/babi).")
  if half:
    directory, split, other = half[0]
    raise FileNotFoundError(
        f"bAbI task {task} ({size}): the {split} file qa{task}_*_{split}.txt "
        f"is missing from {directory}, which has {os.path.basename(other)}. "
        + get_it)
  raise FileNotFoundError(
      f"bAbI task {task} ({size}, folder {sub}/) not found: looked for "
      f"qa{task}_*_train.txt and qa{task}_*_test.txt in "
      f"{', '.join(candidates)}. " + get_it)


def available_tasks(data_dir, size: str = "10k") -> list[int]:
  """The tasks whose train and test files `find_task_files` finds."""
  tasks = []
  for task in range(1, 21):
    try:
      find_task_files(data_dir, task, size)
      tasks.append(task)
    except FileNotFoundError:
      pass
  return tasks


class UnknownWordsError(KeyError):
  """Words outside the vocabulary; the message suggests close known words."""

  def __init__(self, words, known):
    self.words = list(dict.fromkeys(words))
    self.known = sorted(known)
    lower = {w.lower(): w for w in self.known}
    self.suggestions = {
        w: [lower[m] for m in difflib.get_close_matches(w.lower(), lower, n=3)]
        for w in self.words}
    super().__init__(self.words)

  def __str__(self):
    parts = [f"{w!r} (did you mean {', '.join(s)}?)" if s else repr(w)
             for w, s in self.suggestions.items()]
    known = (", ".join(self.known) if len(self.known) <= 40
             else f"{len(self.known)} words")
    return f"Unknown words: {'; '.join(parts)}. Known words: {known}."


class Vocab:
  """Sorted words with ids from 1; id 0 is padding."""

  def __init__(self, words):
    self.words = ("<pad>",) + tuple(sorted(set(words)))
    self.ids = {w: i for i, w in enumerate(self.words) if i}
    self._spellings = {}  # Lower case -> the words spelt so.
    for w in self.words[1:]:
      self._spellings.setdefault(w.lower(), []).append(w)

  def __len__(self):
    return len(self.words)

  def match_case(self, tokens) -> list[str]:
    """A typed sentence or question in the case the bAbI files write it.

    A word with one spelling in the vocabulary gets it. bAbI writes some
    words both ways ('The'/'the', 'Emily'/'emily'): capitalised first in a
    sentence and lower case elsewhere, in every task, so those follow their
    position. Unknown words stay as typed.
    """
    out = []
    for i, t in enumerate(tokens):
      spellings = self._spellings.get(t.lower(), [t])
      usual = t.lower().capitalize() if i == 0 else t.lower()
      out.append(spellings[0] if len(spellings) == 1
                 else usual if usual in spellings else t)
    return out

  def encode(self, tokens) -> list[int]:
    """Word ids of `tokens`; raises UnknownWordsError listing all unknown."""
    unknown = [t for t in tokens if t not in self.ids]
    if unknown:
      raise UnknownWordsError(unknown, self.words[1:])
    return [self.ids[t] for t in tokens]

  def word(self, i) -> str:
    """The word of id `i`; ids past the words are MemN2N's time words (answer
    classes in the authors' code), '<time t>'."""
    i = int(i)
    return self.words[i] if i < len(self) else f"<time {i - len(self)}>"

  def decode(self, ids) -> list[str]:
    return [self.word(i) for i in ids]


@dataclasses.dataclass(frozen=True)
class BabiData:
  """Train/test arrays (see `load_babi`) and the sizes they were padded to."""
  train: dict[str, np.ndarray]
  test: dict[str, np.ndarray]
  vocab: Vocab
  story_maxlen: int
  query_maxlen: int
  sentence_maxlen: int
  memory_size: int
  tokens: str = "keras"  # How text was split (`tokenize`).


def _flat(sentences) -> list:
  return list(itertools.chain.from_iterable(sentences))


def _pad(seqs, maxlen: int) -> np.ndarray:
  """Keras `pad_sequences` defaults: pad and truncate at the front."""
  out = np.zeros((len(seqs), maxlen), np.int32)
  for i, s in enumerate(seqs):
    s = s[len(s) - maxlen:] if len(s) > maxlen else s
    out[i, maxlen - len(s):] = s
  return out


def _arrays(stories, queries, data_sizes) -> dict[str, np.ndarray]:
  """Id lists -> 'story', 'sentences', 'query' arrays (see `load_babi`)."""
  story_maxlen, query_maxlen, sentence_maxlen, memory_size = data_sizes
  sentences = np.zeros((len(stories), memory_size, sentence_maxlen), np.int32)
  for i, story in enumerate(stories):
    if story:
      recent = story[-memory_size:]
      sentences[i, memory_size - len(recent):] = _pad(recent, sentence_maxlen)
  return {"story": _pad([_flat(s) for s in stories], story_maxlen),
          "sentences": sentences,
          "query": _pad(queries, query_maxlen)}


def load_babi(data_dir=None, task: int | Sequence[int] = 1,
              size: str = "10k", memory_size: int | None = None,
              tokens: str = "keras") -> BabiData:
  """Loads a bAbI task as int32 arrays of word ids.

  Each split is a dict of
    'story': (N, story_maxlen) all story words, flat, padded at the front;
    'sentences': (N, memory_size, sentence_maxlen) the latest `memory_size`
      sentences in story order, each padded at the front, with empty (all-0)
      memories first so the last slot holds the most recent sentence;
    'query': (N, query_maxlen), padded at the front;
    'label': (N,) id of the answer in the same vocabulary.

  Args:
    data_dir: see `find_task_files`; defaults to `default_babi_dir()`.
    task: 1 to 20, or several tasks for joint training: one vocabulary and
      one padding for all of them, their questions concatenated in task
      order, and each split gets 'task': (N,) the task of each question.
    size: '10k' (en-10k/) or '1k' (en/).
    memory_size: memories kept for MemN2N; default (the authors' code): the
      most sentences of any training story, at most 50.
    tokens: 'code' or 'keras', see `tokenize`.
  """
  tasks = [task] if isinstance(task, int) else list(task)
  parsed = [[parse_babi(p, tokens) for p in find_task_files(
      data_dir or default_babi_dir(), t, size)] for t in tasks]
  train, test = ([e for files in parsed for e in files[i]] for i in (0, 1))
  examples = train + test
  vocab = Vocab(w for story, q, a in examples
                for w in [*_flat(story), *q, a])
  sizes = (max(len(_flat(s)) for s, _, _ in examples),
           max(len(q) for _, q, _ in examples),
           max((len(x) for s, _, _ in examples for x in s), default=1),
           memory_size or min(max(len(s) for s, _, _ in train), MAX_MEMORY))

  def split_arrays(split, i):
    arrays = _arrays([[vocab.encode(x) for x in s] for s, _, _ in split],
                     [vocab.encode(q) for _, q, _ in split], sizes)
    arrays["label"] = np.array([vocab.ids[a] for _, _, a in split], np.int32)
    if not isinstance(task, int):
      arrays["task"] = np.repeat(tasks, [len(f[i]) for f in parsed]).astype(
          np.int32)
    return arrays

  return BabiData(split_arrays(train, 0), split_arrays(test, 1), vocab,
                  *sizes, tokens)


def _is_word(token: str) -> bool:
  return bool(re.match(r"\w", token))  # Tokens are \w+ or \W+ runs.


def join_tokens(tokens) -> str:
  """['Mary', 'went', 'home', '.'] -> 'Mary went home.'."""
  return re.sub(r" (?=[^\w\s])", "", " ".join(tokens))


def parse_story(text: str) -> list[list[str]]:
  """Typed story -> sentences of tokens, as `parse_babi` reads a story.

  A sentence ends at a '.' (spaces after it or not) or at a line break, where
  the '.' every bAbI sentence ends with is added; lines of punctuation only
  are skipped. Case is left as typed (see `Vocab.match_case`).

  Raises:
    ValueError: for a '?' in the story (questions come after it).
  """
  sentences, sentence = [], []
  for line in text.splitlines():
    for token in tokenize(line) + ["."]:
      sentence.append(token)
      if token != ".":
        continue
      if any("?" in t for t in sentence):
        raise ValueError(f"Story sentence {join_tokens(sentence[:-1])!r} is "
                         "a question: questions come after the story.")
      if any(_is_word(t) for t in sentence):
        sentences.append(sentence)
      sentence = []
  return sentences


def parse_question(text: str) -> list[str]:
  """Typed question -> tokens ending in '?' (added if missing).

  Raises:
    ValueError: for a question without words.
  """
  tokens = tokenize(text)
  if not any(_is_word(t) for t in tokens):
    raise ValueError(f"Empty question: {text!r}.")
  return tokens if tokens[-1] == "?" else tokens + ["?"]


def encode_example(story_text: str, question: str,
                   data: BabiData) -> dict[str, np.ndarray]:
  """Encodes a typed story and question as a batch of one (no 'label').

  Parsed by `parse_story` and `parse_question`, then split as `data` was
  (`data.tokens`) and matched to the case of `data.vocab`
  (`Vocab.match_case`), so typed text gets the ids the same story has in a
  bAbI file. Over-long inputs are cut at the front like `pad_sequences`.

  Raises:
    UnknownWordsError: listing every word outside `data.vocab`.
    ValueError: for an empty story or question, or a '?' in the story.
  """
  split = lambda s: data.vocab.match_case(
      tokenize(join_tokens(s), data.tokens))
  sentences = [split(s) for s in parse_story(story_text)]
  if not sentences:
    raise ValueError("Empty story: a question needs at least one story "
                     "sentence before it.")
  query = split(parse_question(question))
  # Encode everything at once so the error lists every unknown word.
  data.vocab.encode(_flat(sentences) + query)
  sizes = (data.story_maxlen, data.query_maxlen, data.sentence_maxlen,
           data.memory_size)
  return _arrays([[data.vocab.encode(s) for s in sentences]],
                 [data.vocab.encode(query)], sizes)
