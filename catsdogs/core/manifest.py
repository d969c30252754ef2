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

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from catsdogs.core.io import file_hash, remove_path, write_json

logger = logging.getLogger("manifest")

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


# How long a stage waits for `dvc pull` of one folder (the whole Kaggle training set is about 800 MB).
PULL_TIMEOUT_SECONDS = 6 * 3600


def missing_files(manifest_file: str | Path, folder: str | Path) -> tuple[int, int]:
    """How many of the files the manifest lists under ``folder`` (one of its trees, or a folder inside one)
    are absent or of another size on disk, and how many it lists; ``(0, 0)`` when no tree holds ``folder``."""
    return _missing(_trees(manifest_file), folder)


def _trees(manifest_file: str | Path) -> dict:
    return json.loads(Path(manifest_file).read_text(encoding="utf-8")).get("trees", {})


def _missing(trees: dict, folder: str | Path) -> tuple[int, int]:
    folder = Path(folder)
    for root, entries in trees.items():
        try:
            inside = folder.relative_to(root).as_posix()
        except ValueError:
            continue
        prefix = "" if inside == "." else inside + "/"
        listed = {name[len(prefix):]: entry["size"] for name, entry in entries.items() if name.startswith(prefix)}
        missing = 0
        for name, size in listed.items():
            try:
                missing += (folder / name).stat().st_size != size
            except OSError:
                missing += 1
        return missing, len(listed)
    return 0, 0


def require_folders(manifest_file: str | Path, *folders: str | Path) -> None:
    """Make sure the photo folders a manifest stands for are on disk before a stage reads them.

    dvc.yaml's stages depend on the manifest, not on the folders, so ``dvc exp run --pull
    --allow-missing`` (or ``dvc pull <stage>``) on a fresh clone brings the manifest and leaves the
    folders behind. Under DVC (``DVC_STAGE`` set: a stage command), a folder with files missing is
    pulled from the DVC remote (``dvc pull <folder>``: DVC unlocks the repository while a stage command
    runs); elsewhere, or when the pull fails, ``ValueError`` names the folder and the command that
    brings it. Files present are trusted as they are (what is in them is what the stage reads).
    """
    if not Path(manifest_file).is_file():
        return  # DVC runs a stage only when its manifest dep exists; elsewhere the stage reports what it lacks
    trees = _trees(manifest_file)  # read once for every folder (tens of thousands of entries at full scale)
    for folder in folders:
        missing, listed = _missing(trees, folder)
        if not missing:
            continue
        advice = f"run `dvc pull {folder}` (from the DVC remote) or `dvc repro` the stage that writes it"
        if "DVC_STAGE" not in os.environ:
            raise ValueError(f"{folder}: {missing} of the {listed} files {manifest_file} lists are missing; {advice}")
        logger.info("%s: %d of %d files missing (the manifest %s came without them): dvc pull %s",
                    folder, missing, listed, manifest_file, folder)
        try:
            pulled = subprocess.run([sys.executable, "-m", "dvc", "pull", "--quiet", str(folder)], capture_output=True,
                                    text=True, timeout=PULL_TIMEOUT_SECONDS, check=False)
        except subprocess.TimeoutExpired:
            raise ValueError(f"{folder}: `dvc pull {folder}` took over {PULL_TIMEOUT_SECONDS} s; {advice}") from None
        output = (pulled.stderr or pulled.stdout).strip().splitlines()
        still, _ = _missing(trees, folder)
        if pulled.returncode != 0 or still:
            reason = output[-1] if output else f"exit code {pulled.returncode}"
            raise ValueError(f"{folder}: {still or missing} of the {listed} files {manifest_file} lists are missing "
                             f"and `dvc pull {folder}` did not bring them ({reason}); {advice}")
        logger.info("pulled %s from the DVC remote (%d files)", folder, listed)
