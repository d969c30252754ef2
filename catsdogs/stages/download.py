"""Stage download: fetch the raw images with Kaggle's naming, whatever the source.

The raw tree holds a train folder of ``cat.N.jpg`` / ``dog.N.jpg`` and, where the
source has a test set, a test folder of ``N.jpg`` (sources: :mod:`catsdogs.sources.fetch`).
The whole tree is built in a temporary folder beside its target and moved into place
only when complete, so a failed or killed run never leaves a partial tree behind.
Images are only checked by name and size here; the split stage decodes them.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from catsdogs.core.io import atomic_path, temporary_prefix
from catsdogs.core.manifest import forget_manifest, write_manifest
from catsdogs.core.params import DownloadParams, load_params
from catsdogs.sources.fetch import Outputs, fetch

logger = logging.getLogger("download")


@dataclass(frozen=True)
class RawCounts:
    """What the raw tree holds, and what was left out (reason -> count)."""

    train_cats: int
    train_dogs: int
    test: int
    skipped: Counter

    def summary(self) -> str:
        """One log line with the final counts."""
        skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(self.skipped.items())) or "none"
        return (
            f"train: {self.train_cats} cats + {self.train_dogs} dogs; test: {self.test}; skipped: {skipped}"
        )


def raw_layout(raw: str | Path, raw_train: str | Path, raw_test: str | Path) -> tuple[Path, Path]:
    """The train and test folders relative to ``raw``; ``ValueError`` unless both lie inside it, apart."""
    raw, train, test = Path(raw), Path(raw_train), Path(raw_test)
    relative = []
    for key, path in (("paths.raw_train", train), ("paths.raw_test", test)):
        try:
            inside = path.relative_to(raw)
        except ValueError:
            raise ValueError(f"{key} ({path}) must lie inside paths.raw ({raw})") from None
        if inside == Path("."):
            raise ValueError(f"{key} must be a folder inside paths.raw ({raw}), not paths.raw itself")
        relative.append(inside)
    if relative[0] == relative[1] or relative[0] in relative[1].parents or relative[1] in relative[0].parents:
        raise ValueError(f"paths.raw_train ({train}) and paths.raw_test ({test}) must be separate folders")
    return relative[0], relative[1]


def count_images(train: Path, test: Path, skipped: Counter) -> RawCounts:
    """Count the images the tree holds."""
    train_files = [p.name for p in train.glob("*.jpg")] if train.is_dir() else []
    return RawCounts(
        train_cats=sum(name.startswith("cat.") for name in train_files),
        train_dogs=sum(name.startswith("dog.") for name in train_files),
        test=len(list(test.glob("*.jpg"))) if test.is_dir() else 0,
        skipped=skipped,
    )


def build_raw(raw: str | Path, train_relative: Path, test_relative: Path, *, seed: int, **download) -> RawCounts:
    """Build the raw tree in a temporary folder from the source the ``download`` params name, then move it onto ``raw``."""
    raw = Path(raw)
    raw.parent.mkdir(parents=True, exist_ok=True)
    scratch_folder = tempfile.TemporaryDirectory(prefix=temporary_prefix(raw), suffix=".tmp-download", dir=raw.parent)
    with atomic_path(raw) as build, scratch_folder as scratch:
        build.mkdir()
        outputs = Outputs(root=build, train=build / train_relative, test=build / test_relative)
        skipped = fetch(outputs, Path(scratch), DownloadParams.model_validate(download), seed)
        counts = count_images(outputs.train, outputs.test, skipped)
        if not counts.train_cats or not counts.train_dogs:
            missing = "cats" if not counts.train_cats else "dogs"
            raise ValueError(f"the {download['source']} source gave no {missing} (cat.N.jpg / dog.N.jpg)")
        logger.info("moving the new tree into %s", raw)
    return counts


def main() -> None:
    """Load params, fetch the raw images from the configured source, write their manifest, log the counts."""
    params = load_params()
    paths = params.paths
    train_relative, test_relative = raw_layout(paths.raw, paths.raw_train, paths.raw_test)
    logger.info("source: %s -> %s", params.download.source, paths.raw)
    forget_manifest(paths.raw_manifest)
    counts = build_raw(
        paths.raw, train_relative, test_relative, seed=params.common.seed, **params.download.model_dump()
    )
    write_manifest(paths.raw_manifest, {paths.raw: paths.raw})  # once the tree is in place
    logger.info("wrote %s: %s", paths.raw, counts.summary())
