"""TensorFlow's start-up lines (CUDA probing, absl's pre-init notice, oneDNN) stay out of a stage's stderr
unless the user asks for everything with TF_CPP_MIN_LOG_LEVEL=0."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from stages import STARTUP_NOISE
from tests.conftest import ROOT

# What a stage does first: import the package, then TensorFlow, then ask for devices.
IMPORT = "import stages, tensorflow as tf; tf.config.list_physical_devices(); print('ready')"


def stderr_with(level: str | None) -> str:
    """stderr of a fresh process importing TensorFlow the stages' way, with ``level`` (None: unset)."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    # Not conftest.run: it sets TF_CPP_MIN_LOG_LEVEL when the environment has none.
    result = subprocess.run([sys.executable, "-c", IMPORT], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ready", result.stderr
    return result.stderr


def noise(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if STARTUP_NOISE.match(line)]


@pytest.mark.slow
def test_start_up_lines_show_only_when_the_user_asks_for_everything():
    everything = noise(stderr_with("0"))
    if not everything:
        pytest.skip("this machine's TensorFlow prints no start-up lines (nothing to filter)")
    assert noise(stderr_with(None)) == []  # the default
    assert noise(stderr_with("2")) == []  # a user's own quiet level: absl ignores it, the filter does not
    assert noise(stderr_with("1")) == []
