"""experiment.run: a finished run is not started again, an interrupted one is
never taken for finished. The child process is a stand-in that writes what
ssl_jax.main writes (metrics.jsonl; summary.txt after the last epoch)."""
import json
import pathlib

import pytest

from lib import experiment


class FakeMain:
  """Records each launch; `finish=False` acts like a run stopped by SIGTERM."""

  def __init__(self):
    self.launches = []
    self.finish = True

  def __call__(self, args, **kwargs):
    del kwargs
    self.launches.append(args)
    workdir = pathlib.Path(next(a for a in args if a.startswith(
        "--workdir=")).split("=", 1)[1])
    workdir.mkdir(parents=True, exist_ok=True)
    accuracy = 0.1 * len(self.launches)
    with (workdir / "metrics.jsonl").open("a") as f:
      f.write(json.dumps({"epoch": len(self.launches), "wall_time_s": 60,
                          "test_accuracy": accuracy}) + "\n")
    if self.finish:
      (workdir / "summary.txt").write_text("done\n")


@pytest.fixture(name="fake")
def fixture_fake(monkeypatch):
  fake = FakeMain()
  monkeypatch.setattr(experiment.subprocess, "run", fake)
  return fake


def test_finished_run_is_not_started_again(tmp_path, fake):
  first = experiment.run("configs/cnn.py", tmp_path / "a", {"seed": 1})
  again = experiment.run("configs/cnn.py", tmp_path / "a", {"seed": 1})
  assert len(fake.launches) == 1 and again == first
  assert first["test_accuracy"] == pytest.approx(0.1)
  # Another command in the same workdir runs (and resumes) it.
  experiment.run("configs/cnn.py", tmp_path / "a", {"seed": 1, "num_epochs": 9})
  assert len(fake.launches) == 2
  assert "--config.num_epochs=9" in fake.launches[1]


def test_interrupted_run_is_an_error_and_resumes(tmp_path, fake):
  fake.finish = False
  with pytest.raises(RuntimeError, match="stopped before its last epoch"):
    experiment.run("configs/cnn.py", tmp_path / "b", {})
  assert not (tmp_path / "b" / "done").exists()
  fake.finish = True
  result = experiment.run("configs/cnn.py", tmp_path / "b", {})
  assert len(fake.launches) == 2 and result["epoch"] == 2
  assert result["best_test_accuracy"] == pytest.approx(0.2)
  assert result["wall_time_s"] == 60  # The run's own count, not run()'s.
