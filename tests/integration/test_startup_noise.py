"""TensorFlow's start-up lines (CUDA probing, absl's pre-init notice, oneDNN) and its retracing warning
stay out of a stage's stderr unless the user asks for everything with TF_CPP_MIN_LOG_LEVEL=0."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from catsdogs.core.quiet import STARTUP_NOISE
from tests.conftest import ROOT
from tests.tiny_models import make_workspace

# What a stage does first (catsdogs/stages/__main__.py): quiet TensorFlow, import it, ask for devices.
IMPORT = ("from catsdogs.core.quiet import quiet_tensorflow; quiet_tensorflow(); "
          "import tensorflow as tf; tf.config.list_physical_devices(); print('ready')")
RETRACING = "triggered tf.function retracing"


def stderr_with(level: str | None, command: list[str] | None = None, cwd=ROOT) -> str:
    """stderr of a fresh process (by default one importing TensorFlow the stages' way), with ``level``
    (None: unset)."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    # Not conftest.run: it sets TF_CPP_MIN_LOG_LEVEL when the environment has none.
    result = subprocess.run(command or [sys.executable, "-c", IMPORT], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert command or result.stdout.strip() == "ready", result.stderr
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


@pytest.mark.slow
def test_evaluate_keeps_tensorflow_s_retracing_warning_out_unless_asked(tmp_path):
    """Three models predicting 12 images in batches of 5, 5 and 2 trace one predict step (Keras's code)
    six times, and TensorFlow warns that it "triggered tf.function retracing" though each model traced
    only its two batch shapes. The stage's stderr keeps it out unless the user asks for everything."""
    root = make_workspace(tmp_path)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["common"]["batch_size"] = 5
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    evaluate = [sys.executable, "-m", "catsdogs.stages", "evaluate"]
    if RETRACING not in stderr_with("0", evaluate, root):  # asked for everything: the warning shows
        pytest.skip("this TensorFlow does not warn about retracing here (nothing to filter)")
    for level in (None, "2"):
        stderr = stderr_with(level, evaluate, root)
        assert RETRACING not in stderr
        assert "evaluate: wrote reports/evaluate" in stderr  # the stage's own lines still show


def test_importing_the_package_changes_nothing_in_the_process():
    """Every module imports without installing an import hook, filtering a logger or moving fd 2:
    quieting TensorFlow is the explicit call a stage or the command makes where it starts."""
    probe = (
        "import logging, os, pkgutil, importlib, sys, catsdogs\n"
        "ours = lambda: [f for f in sys.meta_path if type(f).__module__.startswith('catsdogs')]\n"
        "before = os.fstat(2).st_ino\n"
        "names = [m.name for m in pkgutil.walk_packages(catsdogs.__path__, 'catsdogs.') if not m.name.endswith('__main__')]\n"
        "for name in names: importlib.import_module(name)\n"
        "assert len(names) > 30, names\n"
        "assert os.fstat(2).st_ino == before, 'fd 2 moved'\n"
        "assert not ours(), 'an import hook'\n"
        "assert not logging.getLogger('tensorflow').filters, 'a filter'\n"
        "assert os.environ.get('TF_CPP_MIN_LOG_LEVEL') == os.environ.get('LEVEL_BEFORE'), 'environment'\n"
        "print('unchanged')\n"
    )
    env = {key: value for key, value in os.environ.items()}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env.pop("LEVEL_BEFORE", None)
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "unchanged", result.stderr[-2000:]
