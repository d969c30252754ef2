"""Content manifests (catsdogs/core/manifest.py): the files downstream stages depend on instead of the
photo folders.

The integration tier's share (stages in subprocesses, dvc, training for seconds); the fast
tests, and what the module covers, are in tests/unit/test_manifest.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catsdogs.sources.synthetic import write_kaggle_train
from tests.conftest import dvc_status, run, stages_ran, update_params

JFIF_X_DENSITY_LOW_BYTE = 15  # Pillow's JPEGs start with a JFIF header: a byte no decoder reads



def same_size_other_bytes(path: Path) -> None:
    """Give a JPEG other bytes of the same size and the same pixels (its JFIF density), as a new file."""
    data = bytearray(path.read_bytes())
    assert data[6:11] == b"JFIF\0"
    data[JFIF_X_DENSITY_LOW_BYTE] ^= 0x02
    path.unlink()  # DVC's hard links are read-only: write a new file, as an editor or a download would
    path.write_bytes(bytes(data))


@pytest.mark.slow
def test_a_photo_with_new_bytes_upstream_reruns_the_stages_downstream(dvc_repo: Path, tmp_path: Path) -> None:
    source = tmp_path / "source"
    write_kaggle_train(source / "train", count=6, size=32, seed=3)
    update_params(
        dvc_repo,
        {
            "download": {"source": "dir", "dir": str(source)},
            "common": {"image_size": 32, "batch_size": 8},
            "vgg16": {"weights": "none"},
        },
    )
    first = run(["dvc", "repro", "extract_features"], dvc_repo)
    assert stages_ran(first) == {"download", "split", "weights", "extract_features"}
    split_manifest = json.loads((dvc_repo / "data/split.manifest.json").read_text())
    assert set(split_manifest["trees"]) == {"data/train", "data/validation"}
    assert sum(len(entries) for entries in split_manifest["trees"].values()) == 12
    raw_manifest = json.loads((dvc_repo / "data/raw.manifest.json").read_text())
    assert "train/cat.0.jpg" in raw_manifest["trees"]["data/raw"]

    # Nothing changed: nothing reruns.
    assert stages_ran(run(["dvc", "repro", "extract_features"], dvc_repo)) == set()
    assert dvc_status(dvc_repo, "extract_features", with_deps=True) == {}

    # A new download gives one photo other bytes under the same name and size: everything downstream reruns.
    photo = source / "train" / "cat.0.jpg"
    size = photo.stat().st_size
    same_size_other_bytes(photo)
    assert photo.stat().st_size == size
    assert stages_ran(run(["dvc", "repro", "-f", "-s", "download"], dvc_repo)) == {"download"}
    assert set(dvc_status(dvc_repo, "extract_features", with_deps=True)) == {"split"}
    rerun = run(["dvc", "repro", "extract_features"], dvc_repo)
    assert stages_ran(rerun) == {"split", "extract_features"}
    assert stages_ran(run(["dvc", "repro", "extract_features"], dvc_repo)) == set()

    # A photo of the split edited by hand: split's output changed, and `dvc repro` puts the split back.
    edited = next((dvc_repo / "data/train/cats").iterdir())
    original = edited.read_bytes()
    same_size_other_bytes(edited)
    status = dvc_status(dvc_repo, "extract_features", with_deps=True)
    assert set(status) == {"split"}
    assert {"changed outs": {"data/train": "modified"}} in status["split"], status
    restored = run(["dvc", "repro", "extract_features"], dvc_repo)
    assert "extract_features" not in stages_ran(restored)  # the data it read are back, byte for byte
    assert edited.read_bytes() == original
    assert dvc_status(dvc_repo, "extract_features", with_deps=True) == {}
