"""Tests for ``catsdogs predict``: table and CSV output, bad files, exit codes, model choice.

The integration tier's share (stages in subprocesses, dvc, training for seconds); the fast
tests, and what the module covers, are in tests/unit/test_cli.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import run
from tests.unit.test_cli import workspace  # noqa: F401  (fixtures)


@pytest.mark.slow
def test_console_script_runs(workspace):  # noqa: F811
    script = Path(sys.executable).parent / "catsdogs"
    if not script.is_file():
        pytest.skip("the catsdogs console script is not installed in this environment")
    result = run([str(script), "predict", "images", "--model", "scratch", "--format", "csv"], workspace, check=False)
    assert result.returncode == 2
    assert result.stdout.splitlines()[0] == "file,label,p_dog"
    assert len(result.stdout.splitlines()) == 4
    assert "broken.jpg" in result.stderr
