"""Output paths are checked when params are loaded, before any stage writes or deletes anything."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from catsdogs.core.params import PathsParams, load_params, validate_params
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


# --- A path param must not name files git tracks (a stage deletes its outputs before writing them) ---

def git_repo(folder: Path, files: dict[str, str], lock: str | None = None) -> Path:
    """A git work tree in ``folder`` with ``files`` (and dvc.lock holding ``lock``) committed."""
    folder.mkdir(parents=True, exist_ok=True)
    if lock is not None:
        files = {**files, "dvc.lock": lock}
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    (folder / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    for command in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "init"]):
        subprocess.run(command, cwd=folder, check=True, capture_output=True, timeout=60)
    return folder


def with_paths(repo: Path, paths: dict) -> Path:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["paths"].update(paths)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    return repo / "params.yaml"


def test_a_path_param_on_files_git_tracks_is_refused_naming_the_key_and_a_file(tmp_path: Path, monkeypatch) -> None:
    repo = git_repo(tmp_path / "repo", {"docs/ec2.md": "ec2", "docs/reliability.md": "promises"})
    monkeypatch.chdir(repo)
    path = with_paths(repo, {"raw": "docs", "raw_train": "docs/train", "raw_test": "docs/test"})
    with pytest.raises(ValueError) as caught:
        load_params(path)
    message = str(caught.value)
    assert "\n" not in message and "paths.raw" in message and "docs/ec2.md" in message, message


def test_a_committed_uncached_report_recorded_in_dvc_lock_is_not_refused(tmp_path: Path, monkeypatch) -> None:
    """metrics.json, history.csv and plots are `cache: false` outputs a user may commit to git."""
    lock = (
        "schema: '2.0'\nstages:\n  split:\n    cmd: python -m catsdogs.stages split\n    outs:\n"
        "    - path: reports/data/split.json\n      hash: md5\n      md5: 0\n"
        "  train_scratch:\n    cmd: python -m catsdogs.stages train_scratch\n    outs:\n"
        "    - path: reports/scratch\n      hash: md5\n      md5: 0\n"
    )
    repo = git_repo(tmp_path / "repo", {
        "reports/data/split.json": "{}", "reports/scratch/metrics.json": "{}", "reports/scratch/plots/loss.json": "[]",
    }, lock)
    monkeypatch.chdir(repo)
    assert load_params(repo / "params.yaml").paths == PathsParams()
    # The same committed file, not recorded as an output, is refused.
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    with pytest.raises(ValueError, match=r"paths\.(split_report|scratch_reports) .*reports/"):
        load_params(repo / "params.yaml")


def test_the_local_weights_folder_may_hold_tracked_files_and_outside_git_nothing_is_checked(
    tmp_path: Path, monkeypatch
) -> None:
    repo = git_repo(tmp_path / "repo", {"weights/README.md": "put weights here"})
    monkeypatch.chdir(repo)
    assert load_params(repo / "params.yaml").paths.local_weights == "weights"
    outside = tmp_path / "plain"
    outside.mkdir()
    (outside / "docs").mkdir()
    (outside / "docs" / "a.md").write_text("not tracked: no git here")
    monkeypatch.chdir(outside)
    assert load_params(with_paths(repo, {"raw": "docs", "raw_train": "docs/t", "raw_test": "docs/u"})).paths.raw == "docs"


