"""`python -m ssl_jax.main` end to end: outputs, bad config keys, NaN stops."""
import json

import numpy as np

import helpers


def test_quick_run_end_to_end(tmp_path):
  """The README's quick command, as written (quick config, real CIFAR-10)."""
  result = helpers.run_main(tmp_path, {})
  assert result.returncode == 0, result.stderr[-3000:]
  for name in ("config.json", "metrics.jsonl", "curves.png", "summary.txt",
               "split.npz"):
    assert (tmp_path / name).exists(), name
  assert any((tmp_path / "tensorboard").iterdir())
  records = [json.loads(l) for l in (tmp_path / "metrics.jsonl").open()]
  assert [r["epoch"] for r in records] == [1, 2]
  assert all(np.isfinite(r["test_loss"]) for r in records)
  assert "steps/s" in result.stderr and "ETA" in result.stderr
  config = json.loads((tmp_path / "config.json").read_text())
  assert config["input"]["labels_per_class"] == 5
  best = max(records, key=lambda r: r["test_accuracy"])
  assert (f"Max test accuracy is {best['test_accuracy']:.4f} at epoch "
          f"{best['epoch']}") in (tmp_path / "summary.txt").read_text()
  with np.load(tmp_path / "split.npz") as split:
    assert len(split["labeled"]) == 50


def test_unknown_config_key_is_named(tmp_path):
  result = helpers.run_main(tmp_path, {"model.widht": 3})
  assert result.returncode != 0
  assert "Unknown config key 'widht'" in result.stderr
  assert not (tmp_path / "checkpoints").exists()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  tiny = {**helpers.TINY, "num_epochs": 1}  # 4 steps per epoch.
  first = helpers.run_main(tmp_path, tiny)
  assert first.returncode == 0, first.stderr[-3000:]
  good = helpers.read_checkpoint(tmp_path, step=4)
  bad = helpers.run_main(tmp_path, {**tiny, "num_epochs": 2,
                                    "optimizer.learning_rate": 1e30})
  assert bad.returncode == 1 and "Traceback" not in bad.stderr
  line = bad.stderr.strip().splitlines()[-1]
  assert "Training loss became nan by step 6" in line
  assert "last good checkpoint (step 4)" in line
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["4"]
  kept = helpers.read_checkpoint(tmp_path, step=4)
  np.testing.assert_array_equal(kept["state"]["params"]["conv1"]["kernel"],
                                good["state"]["params"]["conv1"]["kernel"])


def test_early_stopping_counts_epochs_since_best():
  from ssl_jax.train import loop  # pylint: disable=g-import-not-at-top
  config = helpers.load_config()
  config.early_stopping.patience = 2
  history = [{"val_accuracy": a} for a in (0.1, 0.3, 0.2, 0.25)]
  assert loop._early_stop(history, config)  # Best at 2nd, 2 epochs since.
  assert not loop._early_stop(history[:3], config)
  config.early_stopping.metric = "val_loss"
  assert not loop._early_stop([{"val_loss": l} for l in (3, 2, 2.5)], config)
  assert loop._early_stop([{"val_loss": l} for l in (1, 2, 2.5)], config)
  config.early_stopping.patience = 0
  assert not loop._early_stop(history, config)


def test_pmap_loop_equals_jit_loop(tmp_path):
  """The whole loop (checkpoints, metrics) in both layouts on 4 devices.

  Without dropout and augmentation the two draw no per-device randomness.
  """
  import jax  # pylint: disable=g-import-not-at-top
  from ssl_jax.train import loop  # pylint: disable=g-import-not-at-top
  runs = {}
  for mode in ("jit", "pmap"):
    config = helpers.tiny_config(**{"model.dropout_rate": 0.0,
                                    "input.augment.crop_padding": 0,
                                    "input.augment.flip": False,
                                    "num_epochs": 2, "parallel": mode})
    last = loop.train_and_evaluate(config, tmp_path / mode)
    runs[mode] = last, helpers.read_checkpoint(tmp_path / mode)["state"]
  (jit_last, jit_state), (pmap_last, pmap_state) = runs["jit"], runs["pmap"]
  for a, b in zip(jax.tree.leaves(jit_state), jax.tree.leaves(pmap_state)):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
  for key in helpers.untimed(jit_last):
    np.testing.assert_allclose(pmap_last[key], jit_last[key], rtol=1e-4)


def test_progress_is_a_bar_on_a_terminal(caplog):
  import io  # pylint: disable=g-import-not-at-top
  from ssl_jax.train import reporting  # pylint: disable=g-import-not-at-top
  screen = io.StringIO()
  bar = reporting.Progress(total_steps=20, first_step=0, batch_size=32,
                           stream=screen)
  bar.log(5, 1, 2.5)
  bar.log(10, 1, 2.25)
  bar.newline()
  drawn = screen.getvalue()
  assert drawn.count("\r") == 2 and drawn.endswith("\n")
  last = drawn.split("\r")[-1]
  assert last.startswith("[" + "#" * 15 + "." * 15 + "] step 10/20 (epoch 1)")
  assert "loss 2.2500" in last and "img/s" in last and "ETA" in last
  assert not caplog.records  # On a terminal the bar replaces the log lines.
