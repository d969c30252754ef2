"""Content manifests: one small file that stands for a folder of photos in dvc.yaml's deps.

DVC builds a folder's tree (a stat and a state lookup for every file in it) once for
every stage that names the folder, as an output or as a dependency
(treeverse/dvc#10604, #9085): with data/train and data/validation named by five
stages, a no-op ``dvc status`` walked 25,000 photos a dozen times. The stage that
writes a folder also writes its manifest, every file's relative path, size and
SHA-256, and the stages downstream depend on that one file instead: they rerun
when a file is added, removed, renamed or changed in content, as before, and DVC
walks each folder once (as the output of the stage that writes it).

A manifest is written after its folders are in place, atomically, and the stage
removes the previous one before it starts writing, so a manifest on disk always
describes the folders beside it.
"""

from __future__ import annotations

import os
from pathlib import Path

from catsdogs.core.io import file_hash, remove_path, write_json

ALGORITHM = "sha256"
MANIFEST_VERSION = 1


def tree_entries(root: str | Path) -> dict[str, dict]:
    """Every file under ``root`` (hidden ones and linked folders included): relative POSIX path ->
    ``{"size", "sha256"}``, sorted by path; ``ValueError`` unless ``root`` is a folder."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"cannot write a manifest of {root}: not a folder")
    files = []
    for folder, _, names in os.walk(root, followlinks=True):
        files.extend(Path(folder, name) for name in names)
    entries = {}
    for path in files:
        entries[path.relative_to(root).as_posix()] = {"size": path.stat().st_size, ALGORITHM: file_hash(path, ALGORITHM)}
    return dict(sorted(entries.items()))


def manifest(trees: dict[str, str | Path]) -> dict:
    """The manifest of some folders, each under its name (its path in params.yaml)."""
    return {"algorithm": ALGORITHM, "version": MANIFEST_VERSION,
            "trees": {name: tree_entries(root) for name, root in sorted(trees.items())}}


def forget_manifest(target: str | Path) -> None:
    """Remove a previous manifest before its folders are rewritten (it would describe the old ones)."""
    remove_path(target)


def write_manifest(target: str | Path, trees: dict[str, str | Path]) -> None:
    """Write the manifest of ``trees`` to ``target`` atomically (same folders -> the same bytes)."""
    write_json(target, manifest(trees))
