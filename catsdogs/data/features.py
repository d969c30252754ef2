"""Bottleneck feature files: streamed to disk by extract_features, validated when read by train_top.

Layout of the features folder, one set per split (train, validation):

- ``<split>_features.npy``: float32, N x H x W x 512 (4 x 4 x 512 at 150 x 150);
- ``<split>_labels.npy``: int32, N (cat 0, dog 1);
- ``<split>_files.txt``: the image each row came from, relative to the split folder;
- ``meta.json``: image size, preprocessing, weights, dtype policy, shapes and counts.

Rows, labels and file names are written in the same order, so row i always
matches label i and file i, whatever the class balance.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation")
META_FILE = "meta.json"
# Re-open the memory map every this many bytes written: the dirty pages are written
# out and unmapped, so the resident size stays bounded whatever the data set size.
REMAP_BYTES = 64 * 1024**2


def split_files(directory: str | Path, split: str) -> dict[str, Path]:
    """The three files of one split in a features folder."""
    directory = Path(directory)
    return {
        "features": directory / f"{split}_features.npy",
        "labels": directory / f"{split}_labels.npy",
        "files": directory / f"{split}_files.txt",
    }


def write_split(model, dataset, count: int, output_dir: str | Path, split: str, progress=None) -> tuple[int, ...]:
    """Run ``model`` over an image ``dataset`` (``count`` images) and stream its outputs to a .npy.

    Rows go into a memory-mapped ``.npy`` batch by batch (float32 whatever the
    model's dtype); nothing holds all features in memory. ``progress``, if given,
    is told each batch's image count (log lines it writes go above the progress bar,
    not into it). Returns the array shape.
    """
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    target = split_files(output_dir, split)["features"]
    shape = (count, *model.output_shape[1:])
    row_bytes = int(np.prod(shape[1:])) * 4
    remap_rows = max(1, REMAP_BYTES // row_bytes)
    array = npy_format.open_memmap(target, mode="w+", dtype=np.float32, shape=shape)
    row = mapped_from = 0
    bar = tqdm(total=count, unit="img", desc=f"VGG16 features ({split})", file=sys.stderr)
    with logging_redirect_tqdm(), bar:
        for images in dataset:
            outputs = np.asarray(model.predict_on_batch(images)).astype(np.float32)
            if row + len(outputs) > count:
                raise ValueError(f"{split}: the image pipeline gave more than the {count} images listed")
            array[row : row + len(outputs)] = outputs
            row += len(outputs)
            bar.update(len(outputs))
            if progress is not None:
                progress(len(outputs))
            if row - mapped_from >= remap_rows:
                array.flush()
                del array
                array = npy_format.open_memmap(target, mode="r+")
                mapped_from = row
    array.flush()
    del array
    if row != count:
        raise ValueError(f"{split}: {row} feature rows written for {count} images")
    return shape


def write_labels_and_files(
    output_dir: str | Path, split: str, labels: np.ndarray, relative_files: list[str]
) -> None:
    """Write a split's labels (.npy, int32) and image names (one per line), in row order."""
    paths = split_files(output_dir, split)
    np.save(paths["labels"], np.asarray(labels, dtype=np.int32))
    paths["files"].write_text("".join(f"{name}\n" for name in relative_files), encoding="utf-8")


def read_meta(directory: str | Path) -> dict:
    """features/meta.json, with a clear error when it is missing or broken."""
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise ValueError(f"feature metadata not found: {path} (run extract_features first: dvc repro)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None


def load_split(directory: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """One split's features and labels, checked: rows, labels and file names must agree.

    Raises ``ValueError`` naming the files when they are missing or disagree.
    """
    paths = split_files(directory, split)
    for path in paths.values():
        if not path.is_file():
            raise ValueError(f"feature file not found: {path} (run extract_features first: dvc repro)")
    try:
        features = np.load(paths["features"], mmap_mode="r")
        labels = np.load(paths["labels"])
    except (ValueError, OSError) as error:
        raise ValueError(f"could not read {paths['features']} / {paths['labels']}: {error}") from None
    if features.ndim < 2 or features.dtype != np.float32:
        raise ValueError(
            f"{paths['features']}: expected float32 rows of features, got {features.dtype} {features.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(features):
        raise ValueError(
            f"{paths['features']} has {len(features)} rows but {paths['labels']} has "
            f"{labels.shape} labels: the files do not belong together (rerun extract_features)"
        )
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{paths['labels']}: labels must be 0 (cat) or 1 (dog)")
    file_count = len(paths["files"].read_text(encoding="utf-8").splitlines())
    if file_count != len(labels):
        raise ValueError(f"{paths['files']} lists {file_count} images but there are {len(labels)} labels")
    return np.asarray(features), labels


def check_meta(meta: dict, directory: str | Path, loaded: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Check the loaded splits against meta.json: shapes, counts, and train/validation agreement."""
    meta_path = Path(directory) / META_FILE
    expected_shape = tuple(meta.get("feature_shape", ()))
    for split, (features, labels) in loaded.items():
        if tuple(features.shape[1:]) != expected_shape:
            raise ValueError(
                f"{split} features have shape {features.shape[1:]} per image but {meta_path} says "
                f"{expected_shape}: rerun extract_features"
            )
        counts = meta.get("counts", {}).get(split, {})
        if counts.get("total") != len(labels):
            raise ValueError(
                f"{meta_path} records {counts.get('total')} {split} images but the files hold "
                f"{len(labels)}: rerun extract_features"
            )
