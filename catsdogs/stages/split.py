"""Stage split: the seeded, stratified train/validation split of the raw Kaggle images
(:mod:`catsdogs.data.split`), their manifest, the counts report and the file lists."""

from __future__ import annotations

import logging

from catsdogs.core.io import write_json
from catsdogs.core.manifest import forget_manifest, require_folders, write_manifest
from catsdogs.core.params import load_params
from catsdogs.data.split import split_dataset

logger = logging.getLogger("split")


def main() -> None:
    """Load params, split paths.raw_train into paths.train / paths.validation, write their manifest and the reports."""
    params = load_params()
    paths, split = params.paths, params.split
    require_folders(paths.raw_manifest, paths.raw_train)
    forget_manifest(paths.split_manifest)
    report, file_lists = split_dataset(
        paths.raw_train,
        paths.train,
        paths.validation,
        n=split.n,
        ratio=split.ratio,
        min_side=split.min_side,
        max_pixels=params.images.max_pixels,
        seed=params.common.seed,
    )
    write_manifest(paths.split_manifest, {paths.train: paths.train, paths.validation: paths.validation})
    write_json(paths.split_report, report)
    write_json(paths.split_files, file_lists)
    logger.info(
        "split: %d training, %d validation images (%d dropped, %d normalized, %d skipped)",
        report["train"]["total"],
        report["validation"]["total"],
        report["files"]["dropped"],
        report["files"]["normalized"],
        report["files"]["skipped"],
    )
