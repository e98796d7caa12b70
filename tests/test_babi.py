"""Tests for the bAbI reader, vocabulary and arrays."""
import os
import pathlib

import numpy as np
import pytest

from ssl_jax.data import babi

# The real release, beside the repository as default_babi_dir() expects.
DATA_DIR = (babi.default_babi_dir() if os.environ.get("SSL_JAX_DATA_DIR")
            else str(pathlib.Path(__file__).resolve().parents[2]
                     / "shared" / "data" / "babi"))

_TWO_STORIES = """\
1 Mary moved to the bathroom.
2 John went to the hallway.
3 Where is Mary? \tbathroom\t1
4 Mary got the apple there.
5 Mary picked up the football.
6 What is Mary carrying?\tapple,football\t4 5
1 Sandra travelled to the office.
2 Is Sandra in the office?\tyes\t1
"""


def _write(tmp_path, text, name="qa1_test-task_train.txt"):
  path = tmp_path / name
  path.write_text(text)
  return path


@pytest.fixture(scope="module", params=[1, 2])
def real(request):
  return request.param, babi.load_babi(DATA_DIR, request.param)


def test_parse_two_stories(tmp_path):
  examples = babi.parse_babi(_write(tmp_path, _TWO_STORIES))
  assert len(examples) == 3
  story, question, answer = examples[0]
  assert story == [["Mary", "moved", "to", "the", "bathroom", "."],
                   ["John", "went", "to", "the", "hallway", "."]]
  assert question == ["Where", "is", "Mary", "?"]
  assert answer == "bathroom"
  # Earlier questions are not story sentences; the answer stays one word.
  story, _, answer = examples[1]
  assert len(story) == 4 and answer == "apple,football"
  story, question, answer = examples[2]
  assert story == [["Sandra", "travelled", "to", "the", "office", "."]]
  assert question[0] == "Is" and answer == "yes"


@pytest.mark.parametrize("line, why", [
    ("Mary went to the garden.", "ID"),
    ("4 Where is John?", "without a tab-separated answer"),
    ("4 Where is John?\thallway\ttwo", "supporting IDs"),
    ("4 Where is John?\thallway\t9", "supporting IDs"),
    ("2 John went to the garden.", "IDs start at 1 and increase"),
])
def test_malformed_line_names_file_and_line(tmp_path, line, why):
  path = _write(tmp_path, "1 Mary moved to the bathroom.\n"
                "2 John went to the hallway.\n\n3 Where is Mary?\tbathroom\t1\n"
                + line + "\n")
  with pytest.raises(ValueError, match=why) as info:
    babi.parse_babi(path)
  assert f"{path}, line 5" in str(info.value)


def test_real_tasks(real):
  task, data = real
  expected = {1: (22, 68, 4), 2: (36, 552, 5)}[task]
  assert (len(data.vocab), data.story_maxlen, data.query_maxlen) == expected
  assert data.sentence_maxlen == 7
  assert data.memory_size == {1: 10, 2: 50}[task]
  for split, n in ((data.train, 10_000), (data.test, 1_000)):
    assert split["story"].shape == (n, data.story_maxlen)
    assert split["sentences"].shape == (n, data.memory_size, 7)
    assert split["query"].shape == (n, data.query_maxlen)
    assert split["label"].shape == (n,)
    assert all(a.dtype == np.int32 for a in split.values())
    assert split["label"].min() > 0
  # Keras pads at the front; the first task-1 example is known.
  if task == 1:
    words = data.vocab.decode(data.train["story"][0])
    assert words[-12:] == ("Mary moved to the bathroom . "
                           "John went to the hallway .").split()
    assert set(words[:-12]) == {"<pad>"}
    assert data.vocab.decode(data.train["query"][0]) == [
        "Where", "is", "Mary", "?"]
    assert data.vocab.words[data.train["label"][0]] == "bathroom"
    # Most recent sentence in the last memory slot; empty slots first.
    assert data.vocab.decode(data.train["sentences"][0, -1])[-2:] == [
        "hallway", "."]
    assert not data.train["sentences"][0, :-2].any()


def test_vocab_sorted_with_padding_first(real):
  _, data = real
  words = data.vocab.words
  assert words[0] == "<pad>" and list(words[1:]) == sorted(words[1:])


def test_unknown_words(real):
  _, data = real
  with pytest.raises(babi.UnknownWordsError) as info:
    babi.encode_example("Mary flew to the kitchn.", "Where is Mary?", data)
  assert isinstance(info.value, KeyError)
  assert info.value.words == ["flew", "kitchn"]
  assert "kitchen" in info.value.suggestions["kitchn"]
  assert "'flew'" in str(info.value) and "did you mean kitchen" in str(
      info.value)


def test_encode_example(real):
  _, data = real
  x = babi.encode_example("mary moved to the bathroom\nJohn went to the "
                          "hallway. Mary went to the garden.", "where is Mary",
                          data)
  assert x["story"].shape == (1, data.story_maxlen)
  assert x["sentences"].shape == (1, data.memory_size, data.sentence_maxlen)
  assert data.vocab.decode(x["query"][0])[-4:] == ["Where", "is", "Mary", "?"]
  assert data.vocab.decode(x["sentences"][0, -3])[-6:] == [
      "Mary", "moved", "to", "the", "bathroom", "."]
  assert (x["sentences"][0, -1] != 0).sum() == 6
  with pytest.raises(ValueError, match="Empty question"):
    babi.encode_example("Mary went to the garden.", " ", data)


def test_find_task_files(tmp_path):
  en10k = os.path.join(DATA_DIR, babi.RELEASE, "en-10k")
  train, test = babi.find_task_files(DATA_DIR, 1)
  assert train.endswith("qa1_single-supporting-fact_train.txt")
  assert test.endswith("qa1_single-supporting-fact_test.txt")
  assert babi.find_task_files(en10k, 2)[0].endswith(
      "qa2_two-supporting-facts_train.txt")
  with pytest.raises(FileNotFoundError) as info:
    babi.find_task_files(tmp_path, 3, size="1k")
  message = str(info.value)
  assert os.path.join(str(tmp_path), babi.RELEASE, "en") in message
  assert "tasks_1-20_v1-2.tar.gz" in message and "data_dir" in message
  # Pointing at en-10k never yields 10k files for size '1k'.
  with pytest.raises(FileNotFoundError):
    babi.find_task_files(en10k, 1, size="1k")


def test_default_babi_dir(monkeypatch):
  monkeypatch.setenv("SSL_JAX_DATA_DIR", "/data")
  assert babi.default_babi_dir() == os.path.join("/data", "babi")
  monkeypatch.delenv("SSL_JAX_DATA_DIR")
  assert babi.default_babi_dir() == os.path.abspath("../shared/data/babi")


def test_non_utf8_byte_names_file_and_line(tmp_path):
  path = tmp_path / "qa1_test-task_train.txt"
  path.write_bytes(b"1 Mary moved to the bathroom.\n2 John went to the "
                   b"hall\xe9way.\n3 Where is Mary?\tbathroom\t1\n")
  with pytest.raises(ValueError, match="0xe9 at column 24 is not UTF-8"
                     ) as info:
    babi.parse_babi(path)
  assert f"{path}, line 2" in str(info.value)


@pytest.mark.parametrize("text, why", [
    ("", "is empty"),
    ("\n \n", "is empty"),
    ("1 Mary moved to the bathroom.\n2 John went to the hallway.\n",
     "has no questions"),
])
def test_file_without_questions_is_an_error(tmp_path, text, why):
  path = _write(tmp_path, text)
  with pytest.raises(ValueError, match=why) as info:
    babi.parse_babi(path)
  assert str(info.value).startswith(f"{path} {why}")


def test_load_rejects_a_split_without_questions(tmp_path):
  _write(tmp_path, _TWO_STORIES)
  test = _write(tmp_path, "1 Mary moved to the bathroom.\n",
                "qa1_test-task_test.txt")
  with pytest.raises(ValueError, match="has no questions") as info:
    babi.load_babi(tmp_path, 1)
  assert str(test) in str(info.value)


@pytest.mark.parametrize("present, missing", [("train", "test"),
                                              ("test", "train")])
def test_find_task_files_names_the_missing_split(tmp_path, present, missing):
  _write(tmp_path, _TWO_STORIES, f"qa1_test-task_{present}.txt")
  with pytest.raises(FileNotFoundError) as info:
    babi.find_task_files(tmp_path, 1)
  message = str(info.value)
  assert (f"the {missing} file qa1_*_{missing}.txt is missing from "
          f"{tmp_path}, which has qa1_test-task_{present}.txt") in message
