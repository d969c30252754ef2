"""End to end: `dvc repro split` (download + split) on the synthetic source in a temporary repo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import dvc_status, run, stages_ran, update_params

COUNT = 20  # images per class


def count(repo: Path, split: str, class_name: str) -> int:
    """How many images the split wrote to one class folder."""
    return len(list((repo / "data" / split / class_name).glob("*.jpg")))


@pytest.mark.slow
def test_dvc_repro_split_reruns_only_what_changed(dvc_repo: Path) -> None:
    update_params(
        dvc_repo,
        {"download": {"source": "synthetic", "synthetic": {"count": COUNT, "size": 32, "test_count": 2}}},
    )

    assert set(dvc_status(dvc_repo, "split", with_deps=True)) == {"download", "split"}  # never run
    first = run(["dvc", "repro", "split"], dvc_repo)
    assert stages_ran(first) == {"download", "split"}
    for class_name in ("cats", "dogs"):
        assert count(dvc_repo, "train", class_name) == 16
        assert count(dvc_repo, "validation", class_name) == 4
    report = json.loads((dvc_repo / "reports/data/split.json").read_text())
    assert report["files"]["dropped"] == 0
    assert report["train"] == {"cats": 16, "dogs": 16, "total": 32}
    files = json.loads((dvc_repo / "reports/data/split_files.json").read_text())
    assert len(files["validation"]["dogs"]) == 4
    lock = (dvc_repo / "dvc.lock").read_text()
    assert "split:" in lock and "download:" in lock
    # The manifests later stages depend on: every file of the split, and of the raw tree (train and test).
    manifest = json.loads((dvc_repo / "data/split.manifest.json").read_text())["trees"]
    assert {name: len(entries) for name, entries in manifest.items()} == {"data/train": 32, "data/validation": 8}
    raw_manifest = json.loads((dvc_repo / "data/raw.manifest.json").read_text())["trees"]["data/raw"]
    assert len(raw_manifest) == 2 * COUNT + 2
    assert "data/raw.manifest.json" in lock and "data/split.manifest.json" in lock

    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], dvc_repo).stdout)
    assert metrics[""]["data"]["reports/data/split.json"]["data"]["train"]["total"] == 32

    # Nothing changed: nothing reruns.
    second = run(["dvc", "repro", "split"], dvc_repo)
    assert stages_ran(second) == set()
    assert dvc_status(dvc_repo, "split", with_deps=True) == {}

    # A split param changed: only split reruns, download is reused.
    update_params(dvc_repo, {"split": {"ratio": 0.25}})
    status = dvc_status(dvc_repo, "split", with_deps=True)
    assert set(status) == {"split"}
    assert {"changed deps": {"params.yaml": {"split": "modified"}}} in status["split"], status
    third = run(["dvc", "repro", "split"], dvc_repo)
    assert stages_ran(third) == {"split"}
    for class_name in ("cats", "dogs"):
        assert count(dvc_repo, "train", class_name) == 15
        assert count(dvc_repo, "validation", class_name) == 5
    assert dvc_status(dvc_repo, "split", with_deps=True) == {}
