"""Zero-shot CIFAR-10 accuracy of converted ImageNet weights (no training).

Each of the first --num_images CIFAR-10 test images goes through the
training pipeline's preprocessing (`classification.image_inputs`: standardised,
resized 32 -> 224 bilinearly) into the ImageNet classifier; the predicted
CIFAR class is the one whose ImageNet classes (`imagenet_cifar10.CLASSES`)
hold the most probability. A check that conversion, architecture and
preprocessing fit together; the --stats/--bgr/--bn_epsilon switches break
one of them on purpose.

  python experiments/zero_shot.py --num_images=1000 --out=runs/zero_shot.json
  python experiments/zero_shot.py --num_images=1000 --bgr   # a broken input
"""
import argparse
import json
import pathlib
import sys
import time

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
# pylint: disable=wrong-import-position
from ssl_jax.data import cifar10
from ssl_jax.data import imagenet_cifar10
from ssl_jax.data import registry
from ssl_jax.models import torch_weights
from ssl_jax.models.efficientnet import EfficientNet
from ssl_jax.tasks import classification

# 'none': pixels / 255 only.
STATS = {**classification.PRETRAINED_STATS, "none": (None, None)}


def imagenet_probs(variables, images: np.ndarray, *, variant="lite0",
                   stats="lite", bgr=False, bn_epsilon=1e-3, image_size=224,
                   batch_size=50) -> np.ndarray:
  """(N, 1000) ImageNet probabilities of uint8 (N, H, W, 3) RGB images."""
  mean, std = STATS[stats]
  model = EfficientNet(variant=variant, norm_epsilon=bn_epsilon)

  @jax.jit
  def probs(images):
    images = images[..., ::-1] if bgr else images
    x = classification.image_inputs(
        {"image": images}, None, False, mean=mean, std=std, crop_padding=0,
        flip=False, image_size=image_size)
    return jax.nn.softmax(model.apply(variables, x, train=False)[0])

  n = len(images)
  # Zero images pad the last batch, so one program serves every batch.
  padded = np.concatenate([images, np.zeros(
      (-n % batch_size,) + images.shape[1:], images.dtype)])
  return np.concatenate([np.asarray(probs(padded[i:i + batch_size]))
                         for i in range(0, len(padded), batch_size)])[:n]


def accuracy(probs: np.ndarray, labels: np.ndarray) -> dict:
  """Overall and per-class zero-shot accuracy of ImageNet probabilities."""
  pred = imagenet_cifar10.predict(probs)
  per_class = {name: float(np.mean(pred[labels == c] == c))
               for c, name in enumerate(imagenet_cifar10.CLASSES)
               if np.any(labels == c)}
  return {"accuracy": float(np.mean(pred == labels)),
          "correct": int(np.sum(pred == labels)), "num_images": len(labels),
          "per_class": per_class}


def read_test_set(data_dir: str | None):
  """CIFAR-10 test images and labels from data_dir or the usual places."""
  dirs = [pathlib.Path(data_dir)] if data_dir else registry.default_dirs(
      "cifar10")
  for d in dirs:
    data = cifar10.read(d)
    if data is not None:
      return data[2], data[3]
  raise FileNotFoundError(f"No CIFAR-10 binary files in {[str(d) for d in dirs]}; "
                          "pass --data_dir.")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--num_images", type=int, default=1000)
  parser.add_argument("--out", help="JSON file for the results.")
  parser.add_argument("--pth", help="State-dict file (default: the "
                      "efficientnet_lite0 package's).")
  parser.add_argument("--variant", default="lite0")
  parser.add_argument("--data_dir", help="CIFAR-10 binary files.")
  parser.add_argument("--stats", default="lite", choices=sorted(STATS))
  parser.add_argument("--bgr", action="store_true",
                      help="Feed BGR instead of RGB (a deliberate break).")
  parser.add_argument("--bn_epsilon", type=float, default=1e-3)
  parser.add_argument("--batch_size", type=int, default=50)
  args = parser.parse_args()

  start = time.time()
  images, labels = read_test_set(args.data_dir)
  images, labels = images[:args.num_images], labels[:args.num_images]
  pth = args.pth or torch_weights.package_file("efficientnet_lite0")
  variables = torch_weights.load_pth(pth, args.variant, include_top=True)
  probs = imagenet_probs(variables, images, variant=args.variant,
                         stats=args.stats, bgr=args.bgr,
                         bn_epsilon=args.bn_epsilon,
                         batch_size=args.batch_size)
  result = {**accuracy(probs, labels), "pth": str(pth),
            "variant": args.variant, "stats": args.stats, "bgr": args.bgr,
            "bn_epsilon": args.bn_epsilon, "wall_s": time.time() - start,
            "backend": jax.default_backend()}
  print(f"zero-shot CIFAR-10 accuracy {result['accuracy']:.4f} "
        f"({result['correct']}/{result['num_images']}; stats={args.stats}, "
        f"bgr={args.bgr}, bn_epsilon={args.bn_epsilon}) in "
        f"{result['wall_s']:.0f} s")
  print("  per class: " + ", ".join(
      f"{k} {v:.2f}" for k, v in result["per_class"].items()))
  if args.out:
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
  main()
