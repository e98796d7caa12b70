"""Every shipped config and variant holds only fields its run reads, and
--print_config prints the config.json a run writes."""
import json
import subprocess
import sys

import pytest

import config_reads
import helpers

# Each config's variants; each runs as its ':quick' version, whose fields are
# checked to be the same as the full variant's.
VARIANTS = [
    ("supervised", ""),
    ("multitask", ""), ("multitask", "demo"), ("multitask", "pretext=none"),
    ("multitask", "pretext=jigsaw+exemplar,backbone=resnet"),
    ("pretrain", ""), ("pretrain", "pretext=simclr"),
    ("pretrain", "pretext=byol"), ("pretrain", "pretext=dino"),
    ("finetune", "mode=full"), ("finetune", "mode=linear"),
    ("finetune", "mode=frozen_blocks,blocks=1"),
    ("cnn", ""), ("cnn", "imbalance"), ("cnn", "rebalance"),
    ("memnet", "model=memnet_keras,task=1"), ("memnet", "model=memn2n,task=1"),
    ("memnet", "model=memn2n,task=1,size=1k"),
    ("memnet", "model=memn2n,task=1,paper"),
    ("memnet", "model=memn2n,task=1,paper,ls=epochs"),
    ("efficientnet_transfer", ""), ("efficientnet_transfer", "finetune"),
    ("fixmatch", ""), ("fixmatch", "paper"),
    ("fixmatch", "pretext=fixmatch+rotation"),
]


def _fields(name, arg):
  return sorted(config_reads.leaves(helpers.load_config(name, arg)))


@pytest.mark.parametrize("name", sorted({n for n, _ in VARIANTS}))
def test_every_field_is_read(tmp_path, name):
  """A variant whose fields are those of an earlier variant of its config
  (values differ, as demo's or finetune's modes) shares that one's run."""
  runs = {}  # Fields -> the first variant that has them.
  for n, arg in VARIANTS:
    if n == name:
      fields = _fields(name, arg)
      assert _fields(name, ",".join(filter(None, [arg, "quick"]))) == fields
      runs.setdefault(tuple(fields), arg)
  # One CPU device, in a process of its own: compiles fastest.
  result = subprocess.run(
      [sys.executable, "tests/config_reads.py", str(tmp_path), name,
       *runs.values()], cwd=helpers.ROOT, env=helpers.cpu_devices(1),
      capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-3000:]
  unread = json.loads(result.stdout.splitlines()[-1])
  assert list(unread) == list(runs.values())
  assert not any(unread.values()), (
      f"configs/{name}.py fields no run reads, per variant: {unread}")


def test_print_config_is_the_config_json_a_run_writes(tmp_path):
  command = helpers.main_command(
      tmp_path, {**config_reads.SHORT, "optimizer.learning_rate": 0.01},
      "configs/finetune.py:quick,mode=linear")
  printed = subprocess.run(command + ["--print_config"], cwd=helpers.ROOT,
                           capture_output=True, text=True, check=True,
                           env=helpers.cpu_devices(1)).stdout
  assert not tmp_path.joinpath("config.json").exists()  # Nothing written.
  subprocess.run(command, cwd=helpers.ROOT, capture_output=True, check=True,
                 env=helpers.cpu_devices(1))
  written = (tmp_path / "config.json").read_text()
  assert json.loads(printed) == json.loads(written)
  assert json.loads(printed)["optimizer"]["frozen_params"] == "^backbone/"
  assert json.loads(printed)["optimizer"]["learning_rate"] == 0.01
