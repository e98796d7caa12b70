"""config.profile_steps: a jax.profiler trace TensorBoard's profile plugin
reads, written in the workdir."""
import pytest

from ssl_jax.train import loop

import helpers


def test_profile_steps_write_a_trace(tmp_path):
  config = helpers.tiny_config(profile_steps=(2, 4), num_epochs=1)
  loop.train_and_evaluate(config, str(tmp_path))
  traces = list((tmp_path / "profile").glob("plugins/profile/*/*.xplane.pb"))
  assert len(traces) == 1 and traces[0].stat().st_size > 0


@pytest.mark.parametrize("steps", [(3, 3), (2,), (-1, 2)])
def test_bad_profile_steps_are_refused(steps, tmp_path):
  config = helpers.tiny_config(profile_steps=steps, num_epochs=1)
  with pytest.raises(ValueError, match="profile_steps"):
    loop.train_and_evaluate(config, str(tmp_path))
