"""The test harness itself: subprocesses import this checkout's code and cannot hang a test.

The integration tier's share (stages in subprocesses, dvc, training for seconds); the fast
tests, and what the module covers, are in tests/unit/test_harness.py.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run


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
