"""Classify images of your own with a trained image run.

  python -m ssl_jax.tools.predict --workdir=runs/quick cat.png dog.jpg
  python -m ssl_jax.tools.predict --workdir=runs/quick --test_index=7

Reads the workdir's `config.json`, `data_info.json` and latest checkpoint.
Images of any size are resized to the training images' size, then go
through the run's own inference input pipeline (standardisation, resizing).
Prints the top-k classes with probabilities; each pretext head that can
describe a plain image says what it sees (rotation: the angle, 0 for an
upright image). The model itself is `ssl_jax.inference.Predictor`.
"""
import sys

from absl import app
from absl import flags
import numpy as np

from ssl_jax.inference import Predictor


def _define_flags():
  """The command's flags; not at import, so that tests and other tools can
  import this module next to their own --workdir."""
  flags.DEFINE_string("workdir", None, "A trained image run.")
  flags.DEFINE_integer("top_k", 3, "Classes to print per image.")
  flags.DEFINE_integer("test_index", None,
                       "Also classify this image of the run's test split.")
  flags.mark_flag_as_required("workdir")


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


def report(name: str, probs: dict, class_names, top_k: int,
           descriptions=()) -> str:
  """One line: the top-k classes with probabilities, then what each
  describing pretext head sees."""
  p = probs["class"]
  top = np.argsort(-p, kind="stable")[:top_k]
  line = f"{name}: " + ", ".join(f"{class_names[i]} {p[i]:.3f}" for i in top)
  return "; ".join([line, *descriptions])


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
    one = {k: v[j] for k, v in probs.items()}
    print(report(name, one, predictor.info.class_names, f.top_k,
                 predictor.describe(one)))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
