"""Config files by path, so one config can extend another wherever it lives.

`load(path, arg)` runs the file's `get_config(arg)`, as `--config=path:arg`
does; configs/rotation.py and configs/finetune.py extend configs/multitask.py
this way, without configs/ having to be importable.
"""
import importlib.util
import pathlib

import ml_collections


def load(path: str | pathlib.Path, arg: str = "") -> ml_collections.ConfigDict:
  path = pathlib.Path(path)
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def sibling(file: str, name: str, arg: str = "") -> ml_collections.ConfigDict:
  """The config `name`.py next to `file` (a config's own __file__)."""
  return load(pathlib.Path(file).with_name(f"{name}.py"), arg)
