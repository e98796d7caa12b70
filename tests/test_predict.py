"""tools/predict.py on a tiny two-head run trained here: probabilities equal
the training code's own softmax, rotations are read back, bad input is one
line."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ssl_jax.tools import predict
from ssl_jax.train import loop
from ssl_jax.train import step as step_lib

import helpers


def _marked(rng, n):
  """Noise images with a white top row: their rotation is easy to learn."""
  images = rng.integers(0, 128, (n, 32, 32, 3), dtype=np.uint8)
  images[:, :8] = 255
  return images


def _write_cifar_files(directory, rng, per_file=100):
  """Records in CIFAR-10's binary layout (label byte, then R, G, B planes)."""
  directory.mkdir()
  for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    images = _marked(rng, per_file)
    labels = np.arange(per_file, dtype=np.uint8) % 10
    planes = images.transpose(0, 3, 1, 2).reshape(per_file, -1)
    (directory / name).write_bytes(
        np.concatenate([labels[:, None], planes], axis=1).tobytes())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  root = tmp_path_factory.mktemp("predict")
  _write_cifar_files(root / "data", np.random.default_rng(0))
  config = helpers.tiny_config("multitask", "quick", **{
      "input.data_dir": str(root / "data"), "input.source": "files",
      "input.check_files": False, "input.max_test_examples": 0,
      "steps_per_epoch": 100, "num_epochs": 1, "log_every_steps": 50,
      "model.backbone_config.dropout_rate": 0.0,
      "optimizer.learning_rate": 1e-2})
  loop.train_and_evaluate(config, root / "run")
  return config, root / "run"


def test_probabilities_are_the_trained_models_softmax(run, tmp_path):
  config, workdir = run
  image = _marked(np.random.default_rng(5), 1)[0]
  Image.fromarray(image).save(tmp_path / "mine.png")
  predictor = predict.Predictor(workdir)
  ours = predictor(predict.read_image(tmp_path / "mine.png", (32, 32, 3))[None])
  # The training code's eval path: each image at 4 rotations, both heads.
  built, state = loop.build(config, workdir)
  state, _ = loop.restore(built, state)
  built.ckpts.close()
  task = built.setup.task
  batch = task.expand({"image": image[None], "label": np.zeros(1, np.int32)},
                      None, False)
  outputs, _ = step_lib.predict(state, task.inputs(batch, None, False))
  softmax = lambda z: np.exp(z - z.max(-1, keepdims=True)) / np.exp(
      z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)
  for head in ("class", "rotation"):
    expected = softmax(np.asarray(outputs[head], np.float64))[0]  # Angle 0.
    np.testing.assert_allclose(ours[head][0], expected, atol=1e-5)
    assert ours[head][0].sum() == pytest.approx(1.0, abs=1e-5)


def test_a_rotated_image_gets_its_rotation(run, tmp_path):
  _, workdir = run
  predictor = predict.Predictor(workdir)
  image = _marked(np.random.default_rng(6), 1)[0]
  for k in range(4):
    # Saved at 3x the size: predict resizes files to the training size.
    path = tmp_path / f"turned{k}.png"
    Image.fromarray(np.rot90(image, k)).resize((96, 96)).save(path)
    probs = predictor(predict.read_image(path, (32, 32, 3))[None])
    assert int(np.argmax(probs["rotation"][0])) == k
    one = {h: p[0] for h, p in probs.items()}
    line = predict.report(path.name, one, predictor.info.class_names, 3,
                          predictor.describe(one))
    assert f"rotation {90 * k} degrees" in line and line.count(",") == 2
  # The command prints the same line for the same file.
  printed = subprocess.run(
      [sys.executable, "-m", "ssl_jax.tools.predict", f"--workdir={workdir}",
       str(path)], cwd=helpers.ROOT, capture_output=True, text=True)
  assert printed.returncode == 0, printed.stderr[-2000:]
  assert printed.stdout.splitlines() == [line.replace(path.name, str(path))]


def test_bad_inputs_are_one_line(run, tmp_path):
  _, workdir = run
  Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "gray.png")
  (tmp_path / "junk.png").write_bytes(b"not an image")
  with pytest.raises(ValueError, match="gray.png is a grayscale image"):
    predict.read_image(tmp_path / "gray.png", (32, 32, 3))
  with pytest.raises(ValueError, match="junk.png: not a readable image"):
    predict.read_image(tmp_path / "junk.png", (32, 32, 3))
  untrained = tmp_path / "untrained"
  untrained.mkdir()
  for name in ("config.json", "data_info.json"):
    (untrained / name).write_bytes((workdir / name).read_bytes())
  for where, message in ((untrained, "No checkpoint in"),
                         (tmp_path / "nowhere", "config.json not found")):
    result = subprocess.run(
        [sys.executable, "-m", "ssl_jax.tools.predict", f"--workdir={where}",
         str(tmp_path / "gray.png")], cwd=helpers.ROOT, capture_output=True,
        text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1]
