"""Output paths are checked when params are loaded, before any stage writes or deletes anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stages.lib.params import PathsParams, load_params, validate_params
from stages.lib.synthetic import write_kaggle_train
from tests.conftest import ROOT


def refused(paths: dict) -> str:
    """The error message params with these ``paths`` get."""
    with pytest.raises(ValueError) as error:
        validate_params({"paths": paths})
    return str(error.value)


def test_shipped_paths_pass() -> None:
    params = load_params(ROOT / "params.yaml")
    assert params.paths == PathsParams()


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("validation", "/tmp/validation", "is absolute"),
        ("features", "C:\\features", "is absolute"),
        ("figures", "~/figures", "starts with '~'"),
        ("validation", "../outside", "leaves the repository"),
        ("features", "features/../../x", "leaves the repository"),
        ("train", "data/../data/train", "contains '..'"),
        ("features", ".", "is the repository root"),
        ("features", "", "is the repository root"),
        ("features", "./", "is the repository root"),
        ("summary", ".git/summary.md", "git or DVC own"),
        ("features", ".dvc/cache", "git or DVC own"),
    ],
)
def test_a_path_outside_or_at_the_root_is_refused_naming_the_key(key: str, value: str, words: str) -> None:
    message = refused({key: value})
    assert f"paths.{key} ({value!r})" in message and words in message


def test_two_keys_on_the_same_path_are_refused_naming_both() -> None:
    message = refused({"train": "data/same", "validation": "data/./same/"})
    assert "paths.train and paths.validation are the same path (data/same)" in message


@pytest.mark.parametrize(
    ("changes", "inner", "outer"),
    [
        ({"features": "data"}, "paths.raw (data/raw)", "paths.features (data)"),
        ({"figures": "reports"}, "paths.split_report (reports/data/split.json)", "paths.figures (reports)"),
        ({"top_model": "models/scratch.keras/top.keras"}, "paths.top_model", "paths.scratch_model"),
        ({"raw": "data/train/raw", "raw_train": "data/train/raw/train", "raw_test": "data/train/raw/test"},
         "paths.raw (data/train/raw)", "paths.train (data/train)"),
        # A manifest inside the tree it describes would list itself (and be deleted with the tree).
        ({"split_manifest": "data/train/manifest.json"}, "paths.split_manifest", "paths.train (data/train)"),
        ({"raw_manifest": "data/raw/manifest.json"}, "paths.raw_manifest", "paths.raw (data/raw)"),
    ],
)
def test_a_path_inside_another_is_refused_naming_both(changes: dict, inner: str, outer: str) -> None:
    message = refused(changes)
    assert inner in message and "lies inside" in message and outer in message


def test_the_raw_tree_holds_its_train_and_test_folders() -> None:
    paths = validate_params({"paths": {"raw": "in/raw", "raw_train": "in/raw/t", "raw_test": "in/raw/u"}}).paths
    assert (paths.raw_train, paths.raw_test) == ("in/raw/t", "in/raw/u")


def test_a_stage_outside_dvc_refuses_a_path_outside_the_repo_before_touching_it(tmp_path: Path) -> None:
    """`python -m stages.split` with paths.validation: ../outside exits 1 and leaves the outside file alone."""
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
        [sys.executable, "-m", "stages.split"], cwd=repo, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1, result.stderr
    assert "paths.validation ('../outside') leaves the repository" in result.stderr
    assert (outside / "precious.txt").read_text() == "keep me"
    assert (outside / "cats" / "cat.1.jpg").read_bytes() == b"not yours"
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
