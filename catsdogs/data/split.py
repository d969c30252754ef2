"""The seeded, stratified train/validation split of the raw Kaggle images (the split stage's work).

Reads the raw ``cat.N.jpg`` / ``dog.N.jpg`` files (other names are skipped and
counted), decode-checks every image with Pillow and with TensorFlow's decoder,
under ``images.max_pixels`` (:mod:`catsdogs.data.images`; a broken or hostile file is
dropped and counted, never a crash), and writes the
train and validation sets as ``cats/`` and ``dogs/`` folders (Keras' directory
layout) under the Kaggle file names, plus a metrics report (counts only) and
the file lists (chosen, dropped, normalized and skipped files).

Same files and params give the same lists and the same bytes: files are sorted
by class then numeric id, and each class is permuted by its own NumPy Generator
seeded with ``[common.seed, label]``. The tutorial shuffled without a seed.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from catsdogs.core.io import atomic_path, naming_errors, temporary_prefix
from catsdogs.core.labels import CLASS_FOLDERS, parse_train_name
from catsdogs.core.progress import WorkEstimate
from catsdogs.data.images import DROP_REASONS, NORMALIZE_REASONS, ImageCheck, check_images, write_image

logger = logging.getLogger("split")

MAX_LOGGED_DROPS = 50  # each dropped file is logged up to this many; all are in the files report
ESTIMATE_AFTER = 200  # images decode-checked before the estimate of the time left


def list_raw_images(directory: str | Path) -> tuple[list[Path], list[str]]:
    """The Kaggle-named files sorted by (class, id, name), and the names of everything else skipped."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"raw image folder not found: {directory} (run the download stage first)")
    keyed, skipped = [], []
    for path in directory.iterdir():
        parsed = parse_train_name(path.name) if path.is_file() else None
        if parsed is None:
            skipped.append(path.name)
        else:
            keyed.append((parsed[0], parsed[1], path.name, path))
    return [item[3] for item in sorted(keyed)], sorted(skipped)


def class_quotas(available: list[int], n: int | None) -> list[int]:
    """How many images each class contributes: all of them, or ``n`` divided between the classes.

    ``n`` is split evenly; when ``n`` is odd the extra image goes to the class
    with more valid images (cats on a tie). A class with fewer valid images than
    its half gives all it has and the other class makes up the difference, so the
    split always holds exactly ``n`` images. ``n`` above the number of valid
    images is a ``ValueError``.
    """
    if n is None:
        return list(available)
    total = sum(available)
    if n > total:
        raise ValueError(
            f"split.n is {n} but only {total} valid images exist "
            f"({', '.join(f'{count} {name}' for name, count in zip(CLASS_FOLDERS, available))}): "
            f"lower split.n or set it to null to use all"
        )
    larger = int(np.argmax(available))  # argmax takes the first (cats) on a tie
    quotas = [n // 2, n // 2]
    quotas[larger] += n % 2
    for label in (0, 1):
        shortfall = quotas[label] - available[label]
        if shortfall > 0:
            quotas[label] -= shortfall
            quotas[1 - label] += shortfall
    return quotas


def _by_id(path: Path) -> tuple[int, str]:
    """Sort key inside one class: numeric id, then name."""
    return parse_train_name(path.name)[1], path.name


def choose_split(
    valid: list[list[Path]], n: int | None, ratio: float, seed: int
) -> tuple[list[list[Path]], list[list[Path]]]:
    """Per class (lists sorted by id): seeded permutation, take the quota, first ``round(k * ratio)`` validate.

    Returns (train, validation), each a list per class sorted by id. A class left
    without an image in either split is a ``ValueError``.
    """
    quotas = class_quotas([len(files) for files in valid], n)
    train, validation = [], []
    for label, (files, quota) in enumerate(zip(valid, quotas)):
        order = np.random.default_rng([seed, label]).permutation(len(files))[:quota]
        chosen = [files[index] for index in order]
        validation_count = int(np.floor(quota * ratio + 0.5))
        if validation_count < 1 or quota - validation_count < 1:
            raise ValueError(
                f"class {CLASS_FOLDERS[label]} has {quota} images to split: with split.ratio {ratio} that is "
                f"{quota - validation_count} training and {validation_count} validation images; each class "
                f"needs at least one of each (add images, raise split.n, or change split.ratio)"
            )
        validation.append(sorted(chosen[:validation_count], key=_by_id))
        train.append(sorted(chosen[validation_count:], key=_by_id))
    return train, validation


def _write_tree(target: str | Path, files: list[list[Path]], checks: dict[Path, ImageCheck]) -> None:
    """Write ``target/cats`` and ``target/dogs`` in a temporary sibling folder, then move it into place."""
    with atomic_path(target) as temporary:
        for class_name, class_files in zip(CLASS_FOLDERS, files):
            (temporary / class_name).mkdir(parents=True)
            for path in class_files:
                write_image(checks[path], temporary / class_name / path.name)


def split_dataset(
    raw_train: str | Path,
    train_dir: str | Path,
    validation_dir: str | Path,
    *,
    n: int | None,
    ratio: float,
    min_side: int,
    max_pixels: int,
    seed: int,
) -> tuple[dict, dict]:
    """Check, choose and write the split; return (metrics report, file lists)."""
    candidates, skipped = list_raw_images(raw_train)
    if skipped:
        logger.warning("skipped %d files not named cat.N.jpg / dog.N.jpg in %s", len(skipped), raw_train)
    logger.info("decode-checking %d images in %s", len(candidates), raw_train)
    # Re-encoded images wait in a staging folder near the outputs (same disk) until the split is written.
    near = Path(train_dir).absolute().parent
    while not near.is_dir():  # nothing is created before the split is known to be possible
        near = near.parent
    with naming_errors(train_dir):
        staging_folder = tempfile.TemporaryDirectory(
            prefix=temporary_prefix(train_dir), suffix=".tmp-normalized", dir=near
        )
    with naming_errors(train_dir), staging_folder as staging:
        estimate = WorkEstimate(logger, "decode-check", len(candidates), "images", min(ESTIMATE_AFTER, len(candidates)))
        checks = check_images(candidates, min_side, max_pixels, staging, progress=estimate.update)
        dropped = [check for check in checks if not check.ok]
        for check in dropped[:MAX_LOGGED_DROPS]:
            logger.warning("dropped %s: %s (%s)", check.path.name, check.drop, check.detail)
        if len(dropped) > MAX_LOGGED_DROPS:
            logger.warning("... and %d more dropped (see the split files report)", len(dropped) - MAX_LOGGED_DROPS)
        valid: list[list[Path]] = [[], []]
        for check in checks:
            if check.ok:
                valid[parse_train_name(check.path.name)[0]].append(check.path)
        train, validation = choose_split(valid, n, ratio, seed)

        by_path = {check.path: check for check in checks}
        logger.info("writing %s and %s", train_dir, validation_dir)
        _write_tree(train_dir, train, by_path)
        _write_tree(validation_dir, validation, by_path)

    chosen = {path for files in train + validation for path in files}
    normalized = [by_path[path] for path in sorted(chosen) if by_path[path].normalize]
    drop_counts = Counter(check.drop for check in dropped)
    normalize_counts = Counter(check.normalize for check in normalized)

    def per_class(files: list[list[Path]]) -> dict:
        counts = {name: len(class_files) for name, class_files in zip(CLASS_FOLDERS, files)}
        return {**counts, "total": sum(counts.values())}

    report = {
        "files": {
            "found": len(candidates) + len(skipped),
            "skipped": len(skipped),
            "checked": len(candidates),
            "dropped": len(dropped),
            "valid": len(candidates) - len(dropped),
            "used": len(chosen),
            "normalized": len(normalized),
        },
        "dropped": {reason: drop_counts.get(reason, 0) for reason in DROP_REASONS},
        "normalized": {reason: normalize_counts.get(reason, 0) for reason in NORMALIZE_REASONS},
        "train": per_class(train),
        "validation": per_class(validation),
    }
    file_lists = {
        "train": {name: [p.name for p in files] for name, files in zip(CLASS_FOLDERS, train)},
        "validation": {name: [p.name for p in files] for name, files in zip(CLASS_FOLDERS, validation)},
        "dropped": [{"file": c.path.name, "reason": c.drop, "detail": c.detail} for c in dropped],
        "normalized": [{"file": c.path.name, "reason": c.normalize} for c in normalized],
        "skipped": skipped,
    }
    return report, file_lists
