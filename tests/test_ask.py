"""Tests for `ssl_jax.tools.ask`: typed stories, announcements, exit status.

The models are untrained: parsing, attention layout and rejections do not
depend on their weights.
"""
import io
import sys

from absl import flags
from absl.testing import flagsaver
import jax
import ml_collections
import numpy as np
import pytest

from ssl_jax import models
from ssl_jax.data import babi
from ssl_jax.tasks import babi_qa
from ssl_jax.tools import ask
from ssl_jax.train import checkpoints

# 'The'/'the' and 'Is'/'is' both in the vocabulary, as in bAbI tasks 4, 9, 17.
_TRAIN = """\
1 Mary moved to the bathroom.
2 John went to the hallway.
3 Where is Mary?\tbathroom\t1
1 The kitchen is north of the hallway.
2 Sandra went to the kitchen.
3 Is Sandra in the kitchen?\tyes\t2
"""
_TEST = """\
1 Mary moved to the bathroom.
2 John went to the hallway.
3 The kitchen is north of the hallway.
4 Is John in the kitchen?\tno\t2
"""
# The story and question of _TEST, as users type them.
_TYPED = {
    "no periods, one per line": (
        "Mary moved to the bathroom\nJohn went to the hallway\n"
        "The kitchen is north of the hallway", "Is John in the kitchen"),
    "no space after periods": (
        "Mary moved to the bathroom.John went to the hallway.The kitchen is "
        "north of the hallway.", "Is John in the kitchen?"),
    "capitals": (
        "MARY moved to THE bathroom. john went to the Hallway.\nthe kitchen "
        "IS north of The hallway.", "is JOHN in The kitchen?"),
    "extra spaces": (
        "  Mary  moved to the   bathroom .  John went to the hallway .\n\n"
        "   The kitchen is north of the hallway  \n",
        "  Is John in the kitchen ?  "),
}
_CONFIG = {"input": {"data_dir": "", "babi_task": 1, "babi_size": "10k",
                     "memory_size": 2},
           "model": {"name": "memn2n", "hops": 2}}


def _model(name, data, **kwargs):
  """A model and random weights (`eval_shape`: compiling init is slow)."""
  model = models.get_model(name, babi_qa.model_kwargs(data), **kwargs)
  shapes = jax.eval_shape(model.init, jax.random.key(0), data.test)["params"]
  rng = np.random.default_rng(0)
  return model, jax.tree.map(
      lambda s: rng.normal(0, 0.5, s.shape).astype(s.dtype), shapes)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A run directory for the tiny task above: config and untrained weights."""
  root = tmp_path_factory.mktemp("ask")
  (root / "qa1_tiny_train.txt").write_text(_TRAIN)
  (root / "qa1_tiny_test.txt").write_text(_TEST)
  config = ml_collections.ConfigDict(_CONFIG)
  config.input.data_dir = str(root)
  (root / "config.json").write_text(config.to_json())
  data = babi_qa.load(config)
  _, params = _model("memn2n", data, hops=2)
  checkpoints.write(root / "checkpoints", {"state": {"params": params}})
  return root


@pytest.fixture(scope="module")
def loaded(workdir):
  return ask.load(workdir)


@pytest.mark.parametrize("story, question", _TYPED.values(), ids=list(_TYPED))
def test_typed_story_reads_as_the_file_does(workdir, loaded, story, question):
  _, data, _ = loaded
  [(file_story, file_question, _)] = babi.parse_babi(
      workdir / "qa1_tiny_test.txt")
  vocab = data.vocab
  assert [vocab.match_case(s) for s in babi.parse_story(story)] == file_story
  assert vocab.match_case(babi.parse_question(question)) == file_question
  x = babi.encode_example(story, question, data)
  assert set(x) == {"story", "sentences", "query"}
  for k, v in x.items():
    np.testing.assert_array_equal(v, data.test[k][:1], err_msg=k)


@pytest.mark.parametrize("story, why", [
    ("", "Empty story"),
    (" \n\n . ..\n", "Empty story"),
    ("Mary moved to the bathroom. Where is Mary?", "is a question"),
])
def test_story_rejected(loaded, story, why):
  _, data, _ = loaded
  with pytest.raises(ValueError, match=why):
    babi.encode_example(story, "Where is Mary?", data)


@pytest.mark.parametrize("name", ["memn2n", "memnet_keras"])
def test_reply_names_the_sentences_the_model_cannot_see(loaded, name):
  _, data, _ = loaded
  # memn2n holds 2 sentences; the Keras graph the last 20 words (6 + 6 + 8).
  assert (data.memory_size, data.story_maxlen) == (2, 20)
  sentences = ["Sandra went to the kitchen.", "Mary moved to the bathroom.",
               "John went to the hallway.",
               "The kitchen is north of the hallway."]
  kept, limit = {"memn2n": (2, "the last 2 sentences"),
                 "memnet_keras": (3, "the last 20 words")}[name]
  if name == "memn2n":
    answer_fn = loaded[0]
  else:
    model, params = _model(name, data)
    # Compiling dominates: skip LLVM's passes.
    answer_fn = jax.jit(
        lambda x: model.apply({"params": params}, x, train=False),
        compiler_options={"xla_backend_optimization_level": 0})
  lines = ask.reply(answer_fn, data, name, "\n".join(sentences),
                    "Where is John?").splitlines()
  shown = lines[2:2 + kept]
  assert [l.rsplit("  ", 1)[1] for l in shown] == sentences[-kept:]
  weights = np.array([l.rsplit("  ", 1)[0].split() for l in shown], float)
  np.testing.assert_allclose(weights.sum(0), 1, atol=0.02)
  assert lines[2 + kept:] == [
      f"Dropped the {4 - kept} oldest of 4 sentences (the model sees "
      f"{limit}):", *(f"  {s}" for s in sentences[:-kept])]
  # Nothing to announce where every sentence fits.
  fits = ask.reply(answer_fn, data, name, "\n".join(sentences[-2:]),
                   "Where is John?")
  assert "Dropped" not in fits


def test_read_stories():
  lines = ["Mary went home\n", "John left\n", "\n", "Where is Mary?\n", "\n",
           "Who?\n", "Sandra left\n"]
  assert list(ask.read_stories(lines)) == [
      ("Mary went home\nJohn left\n", "Where is Mary?\n"), ("", "Who?\n"),
      ("Sandra left\n", None)]
  assert not list(ask.read_stories([]))


def _main(workdir, monkeypatch, args, stdin=""):
  monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
  with flagsaver.flagsaver():
    ask.main(flags.FLAGS(["ask", f"--workdir={workdir}", *args]))


def test_main_answers(workdir, monkeypatch, capsys):
  _main(workdir, monkeypatch, ["--story=mary moved to the bathroom",
                               "--question=where is mary"])
  out = capsys.readouterr().out.splitlines()
  assert out[0].startswith("Answer: ")
  assert out[2].endswith("  Mary moved to the bathroom.")


def test_interactive_mode_answers_each_story(workdir, monkeypatch, capsys):
  _main(workdir, monkeypatch, [], "Mary moved to the bathroom\nJohn went to "
        "the hallway\n\nWhere is Mary\nSandra went to the kitchen\n\n"
        "where is sandra?\n")
  out = capsys.readouterr().out.splitlines()
  assert [l.split(": ")[0] for l in out[1::4]] == ["Answer", "Answer"]
  assert [l.rsplit("  ", 1)[1] for l in out[3:5]] == [
      "Mary moved to the bathroom.", "John went to the hallway."]
  assert out[7].endswith("  Sandra went to the kitchen.")


@pytest.mark.parametrize("args, stdin, why", [
    (["--story=Mary flew to the bathroom.", "--question=Where is Mary?"], "",
     "'flew'"),
    (["--story=", "--question=Where is Mary?"], "", "Empty story"),
    (["--story=Mary moved to the bathroom."], "", "Empty question"),
    # Interactive: the first story is answered, the second has none.
    ([], "Mary moved to the bathroom\n\nWhere is Mary\n\nWhere is Mary?\n",
     "Empty story"),
    ([], "Mary moved to the bathroom\n", "ended before the question"),
])
def test_rejected_input_exits_nonzero(workdir, monkeypatch, capsys, args,
                                      stdin, why):
  with pytest.raises(SystemExit) as info:
    _main(workdir, monkeypatch, args, stdin)
  assert info.value.code not in (0, None)
  err = capsys.readouterr().err
  assert "Rejected: " in err and why in err, err

