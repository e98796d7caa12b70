"""The random search's trials: inside the seeds' ranges, repeatable, valid."""
import jax
import jax.numpy as jnp

from lib import search
from ssl_jax.models import get_model


def test_trials_stay_in_the_declared_ranges():
  _, trials = search.draw(60, seed=0)
  seen_blocks = set()
  for _, o in trials:
    blocks = len(o["model.features"])
    seen_blocks.add(blocks)
    assert 3 <= blocks <= 5
    assert len(o["model.pool_types"]) == len(o["model.pool_sizes"]) == blocks
    assert set(o["model.features"]) <= {32, 64, 96, 128}
    assert set(o["model.pool_types"]) <= {"max", "avg"}
    assert o["model.dropout_rate"] in (0.3, 0.4, 0.5)
    assert o["model.dense"] in range(64, 257, 32)
    assert o["optimizer.learning_rate"] in (1e-2, 1e-3, 1e-4)
  assert seen_blocks == {3, 4, 5}


def test_trials_repeat_from_the_seed():
  overrides = lambda seed: [o for _, o in search.draw(8, seed)[1]]
  assert overrides(0) == overrides(0)
  assert overrides(0) != overrides(1)


def test_every_drawn_network_builds_on_cifar_images():
  for _, o in search.draw(6, seed=0)[1]:
    fields = {k.split(".")[1]: v for k, v in o.items()
              if k.startswith("model.")}
    model = get_model("core_cnn", num_classes=10, padding="SAME",
                      convs_per_block=2, **fields)
    x = jnp.zeros((2, 32, 32, 3))
    (logits, out), _ = jax.eval_shape(
        lambda: model.init_with_output(jax.random.key(0), x, train=False))
    assert logits.shape == (2, 10)
    assert out["pre_logits"].shape == (2, fields["dense"])
