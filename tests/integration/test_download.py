"""The download stage: layouts, the dir / archive / synthetic sources, atomic output, the CLI.

The integration tier's share (stages in subprocesses, dvc, training for seconds); the fast
tests, and what the module covers, are in tests/unit/test_download.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, run
from tests.unit.test_download import names


def write_params(folder: Path, download: dict) -> None:
    """params.yaml = the project's, with the download section updated."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["download"].update(download)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.parametrize(
    ("download", "expected"),
    [
        ({"source": "ftp"}, "download.source"),
        ({"source": "dir", "dir": ""}, "download.dir is empty"),
        ({"source": "dir", "dir": "/nonexistent/train"}, "download.dir not found: /nonexistent/train"),
    ],
)
def test_cli_with_bad_params_exits_1_with_one_error_line(tmp_path, download, expected):
    write_params(tmp_path, download)
    result = run(["python", "-m", "catsdogs.stages", "download"], tmp_path, check=False)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "download failed" in errors[0]
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "raw").exists()


def test_cli_synthetic_from_a_repo_root(tmp_path):
    write_params(tmp_path, {"source": "synthetic", "synthetic": {"count": 4, "size": 16, "test_count": 2}})
    result = run(["python", "-m", "catsdogs.stages", "download"], tmp_path)
    assert "train: 4 cats + 4 dogs; test: 2; skipped: none" in result.stderr
    assert len(names(tmp_path / "data" / "raw" / "train")) == 8
    assert names(tmp_path / "data") == ["raw", "raw.manifest.json"]
    manifest = json.loads((tmp_path / "data" / "raw.manifest.json").read_text())
    assert sorted(manifest["trees"]["data/raw"]) == sorted(
        f"{folder.name}/{name}" for folder in (tmp_path / "data/raw").iterdir() for name in names(folder)
    )


def test_a_failed_download_leaves_no_manifest_of_an_older_tree(tmp_path):
    write_params(tmp_path, {"source": "synthetic", "synthetic": {"count": 4, "size": 16, "test_count": 2}})
    run(["python", "-m", "catsdogs.stages", "download"], tmp_path)
    write_params(tmp_path, {"source": "dir", "dir": "/nonexistent/train"})
    assert run(["python", "-m", "catsdogs.stages", "download"], tmp_path, check=False).returncode == 1
    assert not (tmp_path / "data" / "raw.manifest.json").exists()
