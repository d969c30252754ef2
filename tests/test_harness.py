"""The test harness itself: subprocesses import this checkout's code and cannot hang a test."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run, stages_ran


def test_subprocesses_import_the_code_under_test(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}  # whatever pytest was given
    result = run([sys.executable, "-c", "import catsdogs; print(catsdogs.__file__)"], tmp_path, env=env)
    assert Path(result.stdout.strip()).resolve() == (ROOT / "catsdogs" / "__init__.py").resolve()


def test_a_hung_subprocess_and_its_children_are_killed_and_the_test_fails_with_its_output(tmp_path):
    pid_file = tmp_path / "child.pid"
    script = f"echo started; sleep 60 & echo $! > {pid_file}; wait"
    started = time.monotonic()
    with pytest.raises(pytest.fail.Exception) as caught:
        run(["bash", "-c", script], tmp_path, timeout=1)
    assert time.monotonic() - started < 30
    assert "ran past 1 s and was killed" in str(caught.value)
    assert "started" in str(caught.value)  # the command's output, not lost
    child = int(pid_file.read_text())
    for _ in range(50):  # the background child was in the killed process group
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the child {child} of the timed-out command is still running")


def test_stages_ran_reads_the_stages_own_log_lines():
    class Result:
        stdout = "Running stage 'split':\n> python -m catsdogs.stages split\n"
        stderr = (
            "12:00:01 INFO split: wrote data/train\n"
            "12:00:02 WARNING catsdogs.sources.http: retry\n"
            "12:00:03 INFO notastage: x\n"
            "I0000 00:00:1796142251.876682    7033 cpu_feature_guard.cc:227] TensorFlow\n"
        )

    assert stages_ran(Result()) == {"split"}
