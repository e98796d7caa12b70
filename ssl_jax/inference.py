"""A trained image run read back from its workdir, as a function.

`Predictor(workdir)` rebuilds the model from the run's `config.json` (every
plug-in resolved by name, as in training), its `data_info.json` and latest
checkpoint: uint8 images -> each head's probabilities. `ssl_jax.tools.predict`
prints them; a self-training teacher labels a pool with them.
"""
import json
import pathlib

import jax
import ml_collections
import numpy as np

from ssl_jax import models
from ssl_jax.data import input_pipeline
from ssl_jax.pretext import mix
from ssl_jax.tasks import classification
from ssl_jax.train import checkpoints


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
    state = checkpoints.read(workdir / "checkpoints")["state"]
    kwargs = classification.model_kwargs(self.config, info.num_classes)
    # Pretexts whose head can say something of a plain image.
    self.describers = {}
    if self.config.task == "pretext_mix":
      pretexts = mix.pretexts_of(self.config)
      kwargs["heads"] = mix.heads(self.config, pretexts, info.num_classes)
      self.describers = {name: p for name, p in pretexts.items()
                         if hasattr(p.module, "describe")}
    elif self.config.task != "classification":
      raise ValueError(f"{workdir} holds a {self.config.task!r} run; predict "
                       "reads image classification runs.")
    fields = {k: v for k, v in self.config.model.items() if k != "name"}
    model = models.get_model(self.config.model.name, kwargs, **fields)
    inputs = classification.make(self.config, info.mean, info.std).inputs
    variables = {"params": state["params"],
                 "batch_stats": state.get("batch_stats", {})}

    def probabilities(images):
      x = inputs({"image": images}, None, False)
      groups = {"image": x, **{name: x for name in self.describers}}
      outputs, _ = model.apply(variables, groups, train=False)
      if not isinstance(outputs, dict):
        outputs = {"class": outputs}
      return {k: jax.nn.softmax(v.astype(np.float32)) for k, v in
              outputs.items()}
    self._probabilities = jax.jit(probabilities)

  def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
    """{'class': (N, classes), and for each pretext in `describers` its
    head's (N, outputs)} probabilities."""
    want = tuple(self.info.image_shape)
    if images.dtype != np.uint8 or images.shape[1:] != want:
      raise ValueError(f"Expected uint8 images of shape {want}, got "
                       f"{images.dtype}{list(images.shape[1:])}.")
    return jax.device_get(self._probabilities(images))

  def describe(self, probs: dict) -> list[str]:
    """What each describing pretext head says of one image's `probs`."""
    return [p.module.describe(p.cfg, probs[name])
            for name, p in self.describers.items()]
