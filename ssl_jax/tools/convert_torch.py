"""PyTorch EfficientNet state dicts -> an `ssl_jax` checkpoint, without torch.

    python -m ssl_jax.tools.convert_torch --pth=FILE --out=DIR [--variant=lite0]
    python -m ssl_jax.tools.convert_torch --package=efficientnet_lite0 --out=DIR
    (either with --no_top to leave out the ImageNet classifier)

The reading and renaming are `ssl_jax.models.torch_weights`.
"""
import argparse

import jax

from ssl_jax.models.torch_weights import load_pth
from ssl_jax.models.torch_weights import package_file
from ssl_jax.train import checkpoints


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument("--pth", help="A torch.save state-dict file.")
  source.add_argument("--package", help="A weights package's model name, "
                      "e.g. efficientnet_lite0.")
  parser.add_argument("--out", required=True, help="Checkpoint directory.")
  parser.add_argument("--variant", help="b0..b7, lite0..lite4 (default: "
                      "from the file name).")
  parser.add_argument("--no_top", action="store_true",
                      help="Leave out the classifier (_fc).")
  args = parser.parse_args(argv)
  top = False if args.no_top else None
  path = args.pth or package_file(args.package)
  variables = load_pth(path, args.variant, top)
  checkpoints.write(args.out, variables)
  n = sum(x.size for x in jax.tree.leaves(variables["params"]))
  print(f"Wrote {n:,} parameters from {path} to {args.out}.")


if __name__ == "__main__":
  main()
