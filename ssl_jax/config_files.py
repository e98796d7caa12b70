"""Config files by path, so one config can extend another wherever it lives.

`load(path, arg)` runs the file's `get_config(arg)`, as `--config=path:arg`
does; configs/pretrain.py and configs/finetune.py extend configs/multitask.py
this way, without configs/ having to be importable.
"""
import importlib.util
import pathlib

import ml_collections


def load(path: str | pathlib.Path, arg="", **kwargs) -> ml_collections.ConfigDict:
  """`get_config(arg)` of the file at `path` (or `get_config(**kwargs)`)."""
  path = pathlib.Path(path)
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if kwargs:
    return module.get_config(**kwargs)
  return module.get_config(arg) if arg else module.get_config()


def parse_arg(arg: str, allowed: set[str]) -> dict[str, str]:
  """'a=1,b=x,quick' -> {'a': '1', 'b': 'x', 'quick': '1'}; checks the names."""
  args = dict(a.split("=", 1) if "=" in a else (a, "1")
              for a in arg.split(",") if a)
  unknown = set(args) - allowed
  if unknown:
    raise ValueError(f"Unknown config arguments {sorted(unknown)} in {arg!r}; "
                     f"expected {sorted(allowed)}.")
  return args


def sibling(file: str, name: str, arg="", **kwargs) -> ml_collections.ConfigDict:
  """The config `name`.py next to `file` (a config's own __file__)."""
  return load(pathlib.Path(file).with_name(f"{name}.py"), arg, **kwargs)
