"""Content manifests (catsdogs/core/manifest.py): the files downstream stages depend on instead of the photo folders.

Unit tests of the manifest itself, and a real `dvc repro` in which a photo keeps its
name and size but changes its bytes upstream (the downstream stages must rerun), and
one in which a photo of the split is edited by hand (`dvc status` must say so and
`dvc repro` must make the folders and their manifest agree again).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from catsdogs.core.io import file_hash
from catsdogs.core.manifest import manifest, missing_files, require_folders, tree_entries, write_manifest


def make_tree(root: Path) -> Path:
    """A small tree with nested, hidden and empty files."""
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    (root / "cats" / "cat.1.jpg").write_bytes(b"one")
    (root / "dogs" / "dog.2.jpg").write_bytes(b"two!")
    (root / ".hidden").write_bytes(b"")
    return root


def test_a_manifest_lists_every_file_with_size_and_content_hash_sorted(tmp_path):
    root = make_tree(tmp_path / "tree")
    entries = tree_entries(root)
    assert list(entries) == [".hidden", "cats/cat.1.jpg", "dogs/dog.2.jpg"]
    assert entries["dogs/dog.2.jpg"] == {"size": 4, "sha256": file_hash(root / "dogs" / "dog.2.jpg")}
    assert file_hash(root / "cats" / "cat.1.jpg") == "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed"


def test_the_same_tree_gives_byte_identical_manifests(tmp_path):
    first = make_tree(tmp_path / "a")
    second = tmp_path / "b"  # the same files, made in another order
    (second / "dogs").mkdir(parents=True)
    (second / "dogs" / "dog.2.jpg").write_bytes(b"two!")
    (second / ".hidden").write_bytes(b"")
    (second / "cats").mkdir()
    (second / "cats" / "cat.1.jpg").write_bytes(b"one")
    write_manifest(tmp_path / "a.json", {"data/x": first})
    write_manifest(tmp_path / "b.json", {"data/x": second})
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert json.loads((tmp_path / "a.json").read_text())["trees"]["data/x"] == tree_entries(first)


def test_same_names_and_sizes_with_other_bytes_change_the_manifest(tmp_path):
    root = make_tree(tmp_path / "tree")
    before = manifest({"t": root})
    os.unlink(root / "cats" / "cat.1.jpg")
    (root / "cats" / "cat.1.jpg").write_bytes(b"ONE")  # same name, same size
    assert manifest({"t": root}) != before


def test_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        tree_entries(tmp_path / "absent")




def test_missing_files_counts_what_the_manifest_lists_under_a_folder_or_a_folder_inside_a_tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_tree(Path("data/raw/train"))
    make_tree(Path("data/raw/test"))
    write_manifest("raw.json", {"data/raw": "data/raw"})
    assert missing_files("raw.json", "data/raw") == (0, 6)
    assert missing_files("raw.json", "data/raw/test") == (0, 3)
    Path("data/raw/test/dogs/dog.2.jpg").write_bytes(b"other size")
    Path("data/raw/test/.hidden").unlink()
    assert missing_files("raw.json", "data/raw/test") == (2, 3)
    assert missing_files("raw.json", "data/raw/train") == (0, 3)
    assert missing_files("raw.json", "elsewhere") == (0, 0)  # no tree holds it


def test_a_folder_the_manifest_stands_for_missing_outside_dvc_names_the_pull(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_STAGE", raising=False)
    make_tree(Path("data/validation"))
    write_manifest("split.json", {"data/validation": "data/validation"})
    require_folders("split.json", "data/validation")  # all there: nothing to do
    for path in sorted(Path("data/validation").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    with pytest.raises(ValueError, match=r"data/validation: 3 of the 3 files split.json lists are missing; "
                                         r"run `dvc pull data/validation`"):
        require_folders("split.json", "data/validation")


def test_under_dvc_a_failed_pull_is_one_clear_error(tmp_path, monkeypatch):
    """A stage command (DVC_STAGE set) runs `dvc pull <folder>`; outside a DVC repository it fails, and the
    error names the folder, DVC's reason and the advice."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_STAGE", "evaluate")
    make_tree(Path("data/validation"))
    write_manifest("split.json", {"data/validation": "data/validation"})
    Path("data/validation/cats/cat.1.jpg").unlink()
    with pytest.raises(ValueError, match=r"data/validation: 1 of the 3 files split.json lists are missing and "
                                         r"`dvc pull data/validation` did not bring them \(.+\); run `dvc pull"):
        require_folders("split.json", "data/validation")
