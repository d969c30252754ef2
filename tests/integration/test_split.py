"""The split (catsdogs/data/split.py, run by the split stage) on generated folders of cat.N.jpg /
dog.N.jpg.

The integration tier's share (stages in subprocesses, dvc, training for seconds); the fast
tests, and what the module covers, are in tests/unit/test_split.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run
from tests.unit.test_split import make_raw, write_params


@pytest.mark.parametrize(
    ("split", "message"),
    [
        ({}, "raw image folder not found: data/raw/train"),
        ({"ratio": 1.5}, "split.ratio"),
        pytest.param({"n": 1000}, "split.n is 1000 but only 6 valid images", marks=pytest.mark.slow),  # decodes (TF)
    ],
)
def test_cli_exits_1_with_a_one_line_error(tmp_path: Path, split: dict, message: str) -> None:
    if "n" in split:
        make_raw(tmp_path / "data" / "raw" / "train", 3, 3)
    write_params(tmp_path, split)
    result = run(["python", "-m", "catsdogs.stages", "split"], tmp_path, check=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR split: " in line]  # not TensorFlow's own
    assert len(errors) == 1 and "split failed" in errors[0]
