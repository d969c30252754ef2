"""Output paths are checked when params are loaded, before any stage writes or deletes anything.

The integration tier's share (stages in subprocesses, dvc, training for seconds); the fast
tests, and what the module covers, are in tests/unit/test_output_paths.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from catsdogs.sources.synthetic import write_kaggle_train
from tests.conftest import ROOT


def test_a_stage_outside_dvc_refuses_a_path_outside_the_repo_before_touching_it(tmp_path: Path) -> None:
    """`python -m catsdogs.stages split` with paths.validation: ../outside exits 1 and leaves the outside file alone."""
    repo = tmp_path / "repo"
    repo.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    (outside / "cats").mkdir()
    (outside / "cats" / "cat.1.jpg").write_bytes(b"not yours")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["paths"]["validation"] = "../outside"
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    write_kaggle_train(repo / "data/raw/train", count=6, size=48, seed=0)  # enough for split to write
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = subprocess.run(
        [sys.executable, "-m", "catsdogs.stages", "split"], cwd=repo, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1, result.stderr
    assert "paths.validation ('../outside') leaves the repository" in result.stderr
    assert (outside / "precious.txt").read_text() == "keep me"
    assert (outside / "cats" / "cat.1.jpg").read_bytes() == b"not yours"
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def docs_repo(dvc_repo: Path) -> Path:
    """The temporary git + DVC repository with tracked docs/ and params putting the raw tree there."""
    from tests.conftest import run, update_params

    (dvc_repo / "docs").mkdir()
    (dvc_repo / "docs" / "ec2.md").write_text("how to run on EC2")
    (dvc_repo / "docs" / "reliability.md").write_text("the promises")
    update_params(dvc_repo, {
        "paths": {"raw": "docs", "raw_train": "docs/train", "raw_test": "docs/test"},
        "download": {"source": "synthetic", "synthetic": {"count": 4, "size": 16, "test_count": 0}},
    })
    run(["git", "add", "-A"], dvc_repo)
    run(["git", "commit", "-qm", "docs"], dvc_repo)
    return dvc_repo


def refused_naming_the_key_and_a_file(result: subprocess.CompletedProcess) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-2000:]
    lines = [line for line in output.splitlines() if "paths.raw" in line]
    assert len(lines) == 1 and "docs/ec2.md" in lines[0] and "git tracks" in lines[0], output[-2000:]


def docs_intact(repo: Path) -> bool:
    docs = repo / "docs"
    return docs.is_dir() and sorted(p.name for p in docs.iterdir()) == ["ec2.md", "reliability.md"] and (
        (docs / "ec2.md").read_text(), (docs / "reliability.md").read_text()) == ("how to run on EC2", "the promises")


@pytest.mark.slow
def test_the_download_stage_refuses_a_raw_path_on_a_tracked_folder_before_writing(dvc_repo: Path) -> None:
    from tests.conftest import run

    repo = docs_repo(dvc_repo)
    refused_naming_the_key_and_a_file(run([sys.executable, "-m", "catsdogs.stages", "download"], repo, check=False))
    assert docs_intact(repo)


class DeletedByDvc(AssertionError):
    """DVC removed the stage's outputs before running its command."""


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True, raises=DeletedByDvc,
    reason="dvc repro removes a stage's outputs before it runs the command (dvc Stage.run -> remove_outs), "
    "so the stage's own check comes too late for docs/; a check before DVC runs the stage is needed",
)
def test_dvc_repro_with_a_raw_path_on_a_tracked_folder_fails_naming_it_and_leaves_it(dvc_repo: Path) -> None:
    from tests.conftest import run

    repo = docs_repo(dvc_repo)
    refused_naming_the_key_and_a_file(run(["dvc", "repro", "download"], repo, check=False))
    if not docs_intact(repo):
        raise DeletedByDvc("docs/ was removed (git can restore its committed files)")
