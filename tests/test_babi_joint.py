"""Joint bAbI training (task=all): one vocabulary, per-task held-out and test
numbers, on a hand-made two-task release."""
import json

import numpy as np
import pytest

from ssl_jax.data import babi
from ssl_jax.tasks import babi_qa
from ssl_jax.train import loop

import helpers

# Two tasks with disjoint words, so the joint vocabulary is checkable.
_TASKS = {
    1: ("1 Mary moved to the bathroom.\n2 John went to the hallway.\n"
        "3 Where is Mary?\tbathroom\t1\n", "Mary", "John",
        ("bathroom", "hallway")),
    2: ("1 Sandra got the apple there.\n2 Sandra journeyed to the garden.\n"
        "3 Where is the apple?\tgarden\t1 2\n", "Sandra", "Daniel",
        ("garden", "office")),
}


def _story(task: int, i: int) -> str:
  """Question `i` of `task`: the people and places of `_TASKS`, varied."""
  text, a, b, (p, q) = _TASKS[task]
  if i % 2:
    text = text.replace(p, "@").replace(q, p).replace("@", q)
  return text.replace(a, "@").replace(b, a).replace("@", b) if i % 3 else text


@pytest.fixture(scope="module")
def release(tmp_path_factory):
  root = tmp_path_factory.mktemp("babi") / "en"
  root.mkdir()
  for task, name in ((1, "single"), (2, "two")):
    for split, n in (("train", 12), ("test", 6)):
      (root / f"qa{task}_{name}-supporting-facts_{split}.txt").write_text(
          "".join(_story(task, i) for i in range(n)))
  return root


def test_joint_vocabulary_padding_and_task_ids(release):
  joint = babi.load_babi(release, (1, 2), "1k")
  alone = [babi.load_babi(release, t, "1k") for t in (1, 2)]
  assert set(joint.vocab.words) == set().union(
      *(d.vocab.words for d in alone))
  for field in ("story_maxlen", "query_maxlen", "sentence_maxlen",
                "memory_size"):
    assert getattr(joint, field) == max(getattr(d, field) for d in alone)
  for split, n in (("train", 12), ("test", 6)):
    arrays = getattr(joint, split)
    np.testing.assert_array_equal(arrays["task"], [1] * n + [2] * n)
    for d, rows in zip(alone, (slice(0, n), slice(n, 2 * n))):
      answers = [d.vocab.words[i] for i in getattr(d, split)["label"]]
      assert [joint.vocab.words[i] for i in arrays["label"][rows]] == answers
  assert "task" not in alone[0].train


def test_hold_out_takes_the_same_count_of_every_task(release):
  train_arrays = babi.load_babi(release, (1, 2), "1k").train
  val = babi_qa.hold_out(train_arrays, 3, seed=0)
  assert np.bincount(train_arrays["task"][val]).tolist() == [0, 3, 3]
  single = {"label": np.zeros(12)}
  np.testing.assert_array_equal(  # One task: the first 3 of the order.
      babi_qa.hold_out(single, 3, 0),
      np.sort(np.random.default_rng(0).permutation(12)[:3]))
  # The authors' code per task: the end of each task's file.
  np.testing.assert_array_equal(
      babi_qa.hold_out(train_arrays, 3, 0, last=True),
      [n for t in (1, 2) for n in np.flatnonzero(train_arrays["task"] == t)[-3:]])


def test_per_task_accuracy_counts_each_task_alone():
  arrays = {"label": np.array([1, 2, 3, 4, 5]), "task": np.array([1, 1, 2, 2, 2])}
  guesses = np.array([1, 0, 3, 4, 0])
  assert babi_qa.per_task_accuracy(guesses, arrays) == {1: 0.5, 2: 2 / 3}


def test_joint_run_reports_each_task(release, tmp_path):
  config = helpers.load_config("memnet", "model=memn2n,task=all,quick")
  config.update_from_flattened_dict({
      "input.data_dir": str(release), "input.babi_size": "1k",
      "input.eval_batch_size": 4, "input.batch_size": 4, "num_epochs": 2,
      "steps_per_epoch": 3, "input.val_size": 2})
  last = loop.train_and_evaluate(config, str(tmp_path))
  per_task = json.loads((tmp_path / "per_task_test.json").read_text())
  assert sorted(per_task) == ["1", "2"]
  # Six test questions per task: the mean of the two is the whole test set's.
  assert np.mean(list(per_task.values())) == pytest.approx(
      last["test_accuracy"])
  # Training error per task: on the 12 - 2 held-out questions of each.
  train = json.loads((tmp_path / "per_task_train.json").read_text())
  assert sorted(train) == ["1", "2"]
  for a in train.values():
    assert 10 * a == pytest.approx(round(10 * a)) and 0 <= a <= 1
