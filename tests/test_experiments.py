"""Each experiment command's quick variant runs end to end and writes its
tables (the full runs are recorded in experiments/README.md)."""
import json
import subprocess
import sys

import jax
import numpy as np
import pytest

import helpers
from helpers import ROOT


def _run(script, tmp_path, *flags):
  # One CPU device, as on a laptop: its programs compile faster than the
  # 4-device ones (multi-device steps have tests of their own).
  result = subprocess.run(
      [sys.executable, f"experiments/{script}", "--quick",
       f"--out={tmp_path}", *flags], cwd=ROOT, capture_output=True,
      text=True,
      env=helpers.cpu_devices(1))
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def test_bench(tmp_path):
  # Every builder but core_cnn_b128 and its bfloat16 twin (core_cnn_b32's
  # at another size and dtype; Keras's bfloat16 is slow on CPUs) and
  # EfficientNet-B0 (two minutes of compiling; its parity has its own tests).
  only = ["core_cnn_b32", "memnet", "rotation_epoch", "stream_input",
          "stream_step"]
  _run("bench.py", tmp_path, "--repeats=1", f"--only={','.join(only)}")
  report = json.loads((tmp_path / "bench.json").read_text())
  assert report["machine"]["cores"] >= 1 and report["machine"]["matmul_gflops"] > 0
  rows = {r["workload"]: r for r in report["rows"]}
  assert sorted(rows) == sorted(only)
  for r in rows.values():
    assert r["ours_examples_per_s"] > 0 and r["reference_examples_per_s"] > 0
    assert r["ratio"] == pytest.approx(  # Rounded to 2 decimals.
        r["ours_examples_per_s"] / r["reference_examples_per_s"], rel=0.02,
        abs=0.006)
  assert [n for n, r in rows.items() if r["versus"] != "Keras"] == [
      "stream_input", "stream_step"]
  table = (tmp_path / "bench.md").read_text()
  assert table.count("\n| ") == 2 + len(rows) and "GFLOP/s" in table


def test_demo_table_is_the_runs_records(tmp_path):
  """`make run`'s script at the quick budget: both heads learn, and its
  table holds what the two runs' metrics.jsonl say."""
  printed = _run("demo.py", tmp_path).stdout.splitlines()
  last = {sub: json.loads((tmp_path / sub / "metrics.jsonl").read_text()
                          .splitlines()[-1])
          for sub in ("two_heads", "labels_only")}
  two, alone = last["two_heads"], last["labels_only"]
  assert [r["step"] for r in last.values()] == [20, 20]
  for split in ("train", "test"):
    for metric in ("loss", "class_loss", "accuracy", "rotation_loss",
                   "rotation_accuracy"):
      assert np.isfinite(two[f"{split}_{metric}"]), (split, metric)
  assert not any("rotation" in k for k in alone)
  assert two["test_rotation_accuracy"] > 0.27  # Chance is 0.25.
  assert printed[1].split()[-3:] == [
      f"{100 * two['test_accuracy']:.2f}%",
      f"{100 * two['test_rotation_accuracy']:.2f}%", f"{two['wall_time_s']}s"]
  assert printed[2].split()[-3:] == [
      f"{100 * alone['test_accuracy']:.2f}%", "-", f"{alone['wall_time_s']}s"]
  assert str(tmp_path / "two_heads" / "curves.png") in printed[3]
  assert (tmp_path / "demo.txt").read_text().splitlines() == printed


def test_self_supervision(tmp_path):
  # utility_mode=full reuses (B)'s n=200 fine-tuning run.
  _run("self_supervision.py", tmp_path, "--parts=A,B,C,utility", "--seeds=0",
       "--modes=full", "--weights=1:1", "--budgets=200,500",
       "--pretext=rotation,jigsaw", "--utility_mode=full",
       "--reference=(B) earlier table=47.36")
  ab = json.loads((tmp_path / "ab.json").read_text())
  assert [r["method"] for r in ab] == [
      "(A) supervised", "(B) rotation pretraining, online linear probe",
      "(B) rotation, fine-tune: full"]
  (c, *refs) = json.loads((tmp_path / "multitask.json").read_text())
  last = json.loads((tmp_path / "multitask_1to1_s0" / "metrics.jsonl")
                    .read_text().splitlines()[-1])
  assert c["per_seed"] == f"{100 * last['test_accuracy']:.2f}"
  assert c["pretext_accuracy"] == (
      f"rotation {100 * last['test_rotation_accuracy']:.2f} +- 0.00")
  assert [(r["method"], r["test_accuracy_mean"]) for r in refs] == [
      (r["method"], r["test_accuracy_mean"]) for r in ab] + [
          ("(B) earlier table", 47.36)]
  # The second choice: its own runs and tables, its own pretext metric.
  (jig,) = json.loads((tmp_path / "multitask_jigsaw.json").read_text())[:1]
  last = json.loads((tmp_path / "multitask_jigsaw_1to1_s0" / "metrics.jsonl")
                    .read_text().splitlines()[-1])
  assert jig["pretext_accuracy"] == (
      f"jigsaw {100 * last['test_jigsaw_accuracy']:.2f} +- 0.00")
  ran = json.loads((tmp_path / "jigsaw_s0" / "config.json").read_text())
  assert list(ran["pretext"]) == ["jigsaw"] and ran["classifier"]["probe"]
  both = [r["method"] for r in json.loads(
      (tmp_path / "pretexts.json").read_text())]
  assert both.count("(A) supervised") == 1
  assert "(B) jigsaw, fine-tune: full" in both
  assert "(C) rotation, cls:pretext = 1:1" in both
  utility = json.loads((tmp_path / "utility.json").read_text())
  assert [r["n"] for r in utility] == [200, 500]
  for name in ("ab", "multitask", "ab_jigsaw", "multitask_jigsaw", "utility"):
    assert (tmp_path / f"{name}.png").stat().st_size > 0


def test_knn_curves(tmp_path):
  _run("knn_curves.py", tmp_path, "--pretext=rotation", "--epochs=2",
       "--steps_per_epoch=2")
  (row,) = json.loads((tmp_path / "knn_curves.json").read_text())
  records = [json.loads(l) for l in (tmp_path / "rotation" / "metrics.jsonl")
             .open()]
  assert [r["epoch"] for r in records] == [1, 2]
  assert row["test_knn_accuracy"] == 100 * records[-1]["test_knn_accuracy"]
  assert (tmp_path / "knn_curves.png").stat().st_size > 0


def test_norms(tmp_path):
  _run("norms.py", tmp_path, "--labels=200", "--norms=batch,none")
  rows = json.loads((tmp_path / "norms.json").read_text())
  assert [r["norm"] for r in rows] == ["batch", "none"]


def test_babi(tmp_path):
  # One task and the joint model (seed selection: test_babi_qa.py); every
  # found task (19 x 2 runs) took ~10 minutes.
  # --seeds=2 with --reseed_above=100: no run trains worse than 100% error,
  # so seed 1 is never trained.
  _run("babi.py", tmp_path, "--size=1k", "--tasks=1", "--paper", "--joint",
       "--select_by=val", "--seeds=2", "--reseed_above=100",
       "--sampling=replacement")  # The paper variant's own: permutation.
  assert not list(tmp_path.glob("*seed1*"))
  for run in ("memn2n_task1_seed0", "memn2n_joint_seed0"):
    ran = json.loads((tmp_path / run / "config.json").read_text())
    assert ran["input"]["sampling"] == "replacement"
  rows = json.loads((tmp_path / "babi.json").read_text())
  label = "memn2n paper, LS val_loss"
  assert [(r["task"], r["run"]) for r in rows] == [(1, label),
                                                   (1, f"{label} joint")]
  records = [json.loads(l) for l in (
      tmp_path / "memn2n_task1_seed0" / "metrics.jsonl").open()]
  assert rows[0]["linear_start_epochs"] == sum(
      r["model.linear_start"] for r in records)
  assert rows[0]["test_error"] == pytest.approx(
      100 * (1 - records[-1]["test_accuracy"]))
  per_task = json.loads((tmp_path / f"memn2n_joint_seed{rows[1]['seed']}" /
                         "per_task_test.json").read_text())
  assert len(per_task) == 20
  assert rows[1]["test_error"] == pytest.approx(100 * (1 - per_task["1"]))
  assert "failed" in (tmp_path / "babi.md").read_text()
  assert (tmp_path / "babi.png").stat().st_size > 0
  # Curves of the tasks that failed (one seed each here).
  assert (tmp_path / "babi_curves_memn2n.png").exists() == (
      rows[0]["test_error"] > 5)


def test_search(tmp_path):
  _run("search.py", tmp_path, "--trials=1")
  rows = json.loads((tmp_path / "leaderboard.json").read_text())
  assert [r["trial"] for r in rows] == [0]
  best = json.loads((tmp_path / "best.json").read_text())
  ran = json.loads((tmp_path / f"trial_{best['trial']:03d}" / "config.json")
                   .read_text())
  assert tuple(ran["model"]["features"]) == tuple(
      best["overrides"]["model.features"])
  assert ran["model"]["pool_types"] == best["overrides"]["model.pool_types"]
  assert "--config=configs/cnn.py " in best["rerun"]


def test_ablations(tmp_path):
  _run("ablations.py", tmp_path, "--only=conv7x7")
  ran = json.loads((tmp_path / "conv7x7" / "config.json").read_text())
  assert (ran["model"]["kernel_size"], ran["model"]["convs_per_block"]) == (7, 1)
  assert "one 7x7 conv" in (tmp_path / "ablations.md").read_text()


def test_imbalance(tmp_path):
  _run("imbalance.py", tmp_path, "--rows=rebalance")
  row, = json.loads((tmp_path / "imbalance.json").read_text())
  report = json.loads((tmp_path / "rebalance" /
                       "test_classification_report.json").read_text())
  assert row["cat recall"] == report["cat"]["recall"]
  ran = json.loads((tmp_path / "rebalance" / "config.json").read_text())
  assert ran["input"]["rebalance"] and ran["input"]["drop_fraction"] == 0.9


def test_frozen_features(tmp_path):
  """RotNet's protocol on a (tiny) pretrained backbone: a linear head per
  level on frozen features, the backbone bit-identical to the pretrained
  one in every run, and the from-scratch baseline at the same K."""
  tiny = {"input.max_test_examples": 200, "input.eval_batch_size": 100,
          "input.batch_size": 16, "steps_per_epoch": 2, "num_epochs": 1,
          "model.backbone_config.features": (8, 16, 16),
          "model.backbone_config.dense": 32}
  pre = subprocess.run(
      helpers.main_command(tmp_path / "pre", tiny,
                           config="configs/pretrain.py:quick"),
      cwd=ROOT, capture_output=True, text=True,
      env=helpers.cpu_devices(1))
  assert pre.returncode == 0, pre.stderr[-3000:]
  _run("frozen_features.py", tmp_path, f"--init_from={tmp_path / 'pre'}",
       "--levels=block2", "--labels_per_class=5")
  rows = json.loads((tmp_path / "frozen_features.json").read_text())
  assert [(r["method"], r["level"], r["labels_per_class"]) for r in rows] == [
      ("frozen, linear", "block2", 5), ("from scratch, all layers", "-", 5)]
  pretrained = helpers.read_checkpoint(tmp_path / "pre")["state"]
  for row, run in zip(rows, ("block2_k5_s0", "scratch_k5_s0")):
    last = json.loads((tmp_path / run / "metrics.jsonl").read_text()
                      .splitlines()[-1])
    assert row["per_seed"] == f"{100 * last['test_accuracy']:.2f}"
    saved = helpers.read_checkpoint(tmp_path / run)["state"]
    same = [np.array_equal(a, b) for c in ("params", "batch_stats")
            for a, b in zip(jax.tree.leaves(saved[c]["backbone"]),
                            jax.tree.leaves(pretrained[c]["backbone"]))]
    assert all(same) if row["level"] != "-" else not any(same[:1])
