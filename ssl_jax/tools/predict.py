"""Classify images of your own with a trained image run.

  python -m ssl_jax.tools.predict --workdir=runs/quick cat.png dog.jpg
  python -m ssl_jax.tools.predict --workdir=runs/quick --test_index=7

Reads the workdir's `config.json`, `data_info.json` and latest checkpoint.
Images of any size are resized to the training images' size, then go
through the run's own inference input pipeline (standardisation, resizing).
Prints the top-k classes with probabilities; a model with a rotation head
also says which rotation it sees (0 for an upright image).
"""
import json
import pathlib
import sys

from absl import app
from absl import flags
import jax
import ml_collections
import numpy as np

from ssl_jax import checkpointing
from ssl_jax import input_pipeline
from ssl_jax import models
from ssl_jax.tasks import classification
from ssl_jax.tasks import pretext_mix



def _define_flags():
  """The command's flags; not at import, so that tests and other tools can
  import this module next to their own --workdir."""
  flags.DEFINE_string("workdir", None, "A trained image run.")
  flags.DEFINE_integer("top_k", 3, "Classes to print per image.")
  flags.DEFINE_integer("test_index", None,
                       "Also classify this image of the run's test split.")
  flags.mark_flag_as_required("workdir")


class Predictor:
  """The run in `workdir` as a function: uint8 images -> probabilities."""

  def __init__(self, workdir: str | pathlib.Path):
    workdir = pathlib.Path(workdir)
    for name in ("config.json", input_pipeline.INFO_FILE):
      if not (workdir / name).is_file():
        raise FileNotFoundError(f"{workdir / name} not found: --workdir must "
                                "be an image run's workdir.")
    self.config = ml_collections.ConfigDict(
        json.loads((workdir / "config.json").read_text()))
    self.info = info = input_pipeline.read_info(workdir)
    state = checkpointing.read(workdir / "checkpoints")["state"]
    kwargs = classification.model_kwargs(self.config, info.num_classes)
    if self.config.task == "pretext_mix":
      _, kwargs["heads"] = pretext_mix.make(
          self.config, info.mean, info.std, info.image_shape, info.num_classes)
    elif self.config.task != "classification":
      raise ValueError(f"{workdir} holds a {self.config.task!r} run; predict "
                       "reads image classification runs.")
    fields = {k: v for k, v in self.config.model.items() if k != "name"}
    model = models.get_model(self.config.model.name, kwargs, **fields)
    self.rotation = "rotation" in self.config.get("pretext", {})
    inputs = classification.make(self.config, info.mean, info.std).inputs
    variables = {"params": state["params"],
                 "batch_stats": state.get("batch_stats", {})}

    def probabilities(images):
      x = inputs({"image": images}, None, False)
      groups = {"image": x, "rotation": x} if self.rotation else x
      outputs, _ = model.apply(variables, groups, train=False)
      if not isinstance(outputs, dict):
        outputs = {"class": outputs}
      return {k: jax.nn.softmax(v.astype(np.float32)) for k, v in
              outputs.items()}
    self._probabilities = jax.jit(probabilities)

  def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
    """{'class': (N, classes)[, 'rotation': (N, 4)]} probabilities."""
    want = tuple(self.info.image_shape)
    if images.dtype != np.uint8 or images.shape[1:] != want:
      raise ValueError(f"Expected uint8 images of shape {want}, got "
                       f"{images.dtype}{list(images.shape[1:])}.")
    return jax.device_get(self._probabilities(images))


def read_image(path: str, shape) -> np.ndarray:
  """An image file as uint8 (H, W, C) of `shape`, resized (bilinear)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    image = Image.open(path)
    image.load()
  except (OSError, ValueError) as e:
    raise ValueError(f"{path}: not a readable image ({e}).") from None
  height, width, channels = shape
  if channels == 3 and image.mode in ("L", "LA", "I", "I;16", "1"):
    raise ValueError(f"{path} is a grayscale image (mode {image.mode}); the "
                     "model was trained on RGB images.")
  image = image.convert("RGB" if channels == 3 else "L")
  image = image.resize((width, height), Image.BILINEAR)
  return np.asarray(image, np.uint8).reshape(shape)


def report(name: str, probs: dict, class_names, top_k: int) -> str:
  """One line: the top-k classes with probabilities, and the rotation."""
  p = probs["class"]
  top = np.argsort(-p, kind="stable")[:top_k]
  line = f"{name}: " + ", ".join(f"{class_names[i]} {p[i]:.3f}" for i in top)
  if "rotation" in probs:
    k = int(np.argmax(probs["rotation"]))
    line += (f"; rotation {90 * k} degrees counter-clockwise "
             f"({probs['rotation'][k]:.3f})")
  return line


def main(argv):
  paths, f = argv[1:], flags.FLAGS
  if not paths and f.test_index is None:
    raise app.UsageError("Give image files, or --test_index=N.")
  try:
    predictor = Predictor(f.workdir)
    names, images = list(paths), [read_image(p, predictor.info.image_shape)
                                  for p in paths]
    if f.test_index is not None:
      from ssl_jax.data import image_datasets  # pylint: disable=g-import-not-at-top
      cfg = predictor.config.input
      ds = image_datasets.load(cfg.name, cfg.data_dir, cfg.source, False,
                               cfg.check_files)
      i = f.test_index
      if not 0 <= i < len(ds.test_labels):
        raise ValueError(f"--test_index={i}: the test split has "
                         f"{len(ds.test_labels)} images.")
      names.append(f"test image {i} (label: "
                   f"{ds.class_names[ds.test_labels[i]]})")
      images.append(ds.test_images[i])
    probs = predictor(np.stack(images))
  except (ValueError, FileNotFoundError) as e:
    sys.exit(f"predict: {e}")
  for j, name in enumerate(names):
    print(report(name, {k: v[j] for k, v in probs.items()},
                 predictor.info.class_names, f.top_k))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
