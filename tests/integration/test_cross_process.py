"""Bit-exact claims checked across processes: the same inputs give the same bytes in a fresh
interpreter with another ``PYTHONHASHSEED`` (nothing may depend on set or dict-of-str order,
object ids or process state). Synthetic data, the split, the figures; the real sample where present.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, run
from tests.tiny_models import make_workspace

pytestmark = pytest.mark.slow


def tree(*folders: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folders`` (relative to their common parent)."""
    digests = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                digests[str(path.relative_to(folder.parent))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def with_hash_seed(seed: int) -> dict:
    return {**os.environ, "PYTHONHASHSEED": str(seed)}


def write_project_params(folder: Path, download: dict) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["download"].update(download)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_synthetic_data_and_the_split_are_bit_identical_in_separate_processes(tmp_path):
    trees = []
    for seed in (1, 2):
        folder = tmp_path / f"run{seed}"
        folder.mkdir()
        write_project_params(folder, {"source": "synthetic", "synthetic": {"count": 12, "size": 32, "test_count": 3}})
        run(["python", "-m", "catsdogs.stages", "download"], folder, env=with_hash_seed(seed))
        run(["python", "-m", "catsdogs.stages", "split"], folder, env=with_hash_seed(seed))
        trees.append(tree(folder / "data", folder / "reports"))
    assert any(name.startswith("data/raw/train/") for name in trees[0])
    assert any(name.startswith("data/validation/dogs/") for name in trees[0])
    assert "reports/data/split_files.json" in trees[0]
    assert trees[0] == trees[1]


def test_figures_and_summary_are_bit_identical_in_separate_processes(tmp_path):
    from catsdogs.stages import evaluate

    base = make_workspace(tmp_path / "base")
    with contextlib.chdir(base):  # main() reads params.yaml and writes its outputs in the working directory
        evaluate.main()
    trees = []
    for seed in (1, 2):
        folder = tmp_path / f"run{seed}"
        shutil.copytree(base, folder)
        run(["python", "-m", "catsdogs.stages", "reports"], folder, env=with_hash_seed(seed))
        trees.append(tree(folder / "reports"))
    assert any(name.startswith("reports/figures/") and name.endswith(".png") for name in trees[0])
    assert "reports/summary.md" in trees[0]
    assert trees[0] == trees[1]


def test_the_real_sample_splits_bit_identically_in_separate_processes(tmp_path, shared_sample):
    trees = []
    for seed in (1, 2):
        folder = tmp_path / f"run{seed}"
        (folder / "data/raw").mkdir(parents=True)
        (folder / "data/raw/train").symlink_to(shared_sample / "train")
        write_project_params(folder, {"source": "dir", "dir": str(shared_sample)})  # split reads data/raw only
        run(["python", "-m", "catsdogs.stages", "split"], folder, env=with_hash_seed(seed))
        trees.append(tree(folder / "data/train", folder / "data/validation", folder / "reports"))
    assert len([name for name in trees[0] if name.startswith(("train/", "validation/"))]) > 100
    assert trees[0] == trees[1]
