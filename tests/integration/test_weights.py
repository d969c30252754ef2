"""The weights stage: VGG16's weights from imagenet, none or a local file, as one file every VGG16
stage loads.

The integration tier's share (stages in subprocesses, dvc, training for seconds); the fast
tests, and what the module covers, are in tests/unit/test_weights.py.
"""

from __future__ import annotations

import os
import sys

import pytest

from catsdogs.stages.weights import prepare_weights
from tests.conftest import ROOT, run
from tests.unit.test_weights import sha256


@pytest.mark.slow
def test_none_gives_the_same_bytes_in_a_fresh_process(tmp_path):
    """Two clones (two processes) write the same file, so their dvc.lock hashes agree."""
    here = tmp_path / "here.weights.h5"
    prepare_weights("none", here, seed=42, local_dir=tmp_path)
    code = (
        "from catsdogs.stages.weights import prepare_weights; "
        f"prepare_weights('none', {str(tmp_path / 'there.weights.h5')!r}, seed=42, local_dir={str(tmp_path)!r})"
    )
    run([sys.executable, "-c", code], ROOT, env={**os.environ, "PYTHONHASHSEED": "7"})
    assert sha256(here) == sha256(tmp_path / "there.weights.h5")


@pytest.mark.slow
def test_the_stage_reports_a_missing_local_file_in_one_line(tmp_path):
    import yaml

    project = tmp_path / "project"
    (project / "weights").mkdir(parents=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["vgg16"]["weights"] = "weights/missing.h5"
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    result = run([sys.executable, "-m", "catsdogs.stages", "weights"], project, check=False)
    assert result.returncode == 1
    assert "VGG16 weights file not found: weights/missing.h5" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project / "models").exists() or not any((project / "models").iterdir())
