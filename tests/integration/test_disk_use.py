"""The photos take little more than their own size on disk: DVC's cache and the split share their
bytes.

The integration tier's share (stages in subprocesses, dvc, training for seconds); the fast
tests, and what the module covers, are in tests/unit/test_disk_use.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, run, update_params


def unique_bytes(*folders: Path) -> int:
    """Bytes of the distinct files (by inode) under ``folders``: what they take on disk together."""
    seen: dict[tuple[int, int], int] = {}
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                info = path.stat()
                seen[(info.st_dev, info.st_ino)] = info.st_size
    return sum(seen.values())


@pytest.mark.slow
def test_photos_are_stored_once_with_the_projects_cache_links(dvc_repo):
    shutil.copy(ROOT / ".dvc" / "config", dvc_repo / ".dvc" / "config")  # the project's cache.type
    update_params(dvc_repo, {"download": {"source": "synthetic", "synthetic": {"count": 30, "size": 48, "test_count": 0}}})
    run(["dvc", "repro", "split"], dvc_repo)

    raw = dvc_repo / "data/raw/train/cat.0.jpg"
    split_copy = next(dvc_repo.glob("data/*/cats/cat.0.jpg"))
    assert split_copy.stat().st_ino == raw.stat().st_ino
    assert raw.stat().st_nlink == 3  # data/raw, data/train or validation, and the DVC cache: one file
    photos = sum(path.stat().st_size for path in (dvc_repo / "data/raw/train").iterdir())
    # The run cache (.dvc/cache/runs) holds stage records (deps, params), not photos: left out.
    on_disk = unique_bytes(dvc_repo / "data", dvc_repo / ".dvc" / "cache" / "files")
    # The content manifests (path, size, SHA-256 per photo) are metadata, like the cache's directory
    # listings: about 130 bytes per photo each (3 MB for Kaggle's 25,000 photos of about 600 MB).
    manifests = sum(path.stat().st_size for path in (dvc_repo / "data").glob("*.manifest.json"))
    assert manifests <= 2 * 200 * 60
    assert photos <= on_disk - manifests <= 1.1 * photos  # the cache's directory listings are the rest
    status = json.loads(run(["dvc", "status", "--json", "download", "split"], dvc_repo).stdout)
    assert status == {}
