"""Stage extract_features: VGG16 bottleneck features of the train and validation images.

Writes the features folder (layout: :mod:`catsdogs.data.features`): float32 feature
arrays streamed to disk batch by batch, their labels and image names in the same
order, and meta.json. The folder is built beside its target and moved in whole,
so a killed run leaves no half-written features. VGG16's weights come from
paths.vgg16_weights (the weights stage). Same images, weights file and
software on the same machine give byte-identical features.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from catsdogs.core.io import atomic_path
from catsdogs.core.labels import CLASS_FOLDERS
from catsdogs.core.manifest import require_folders
from catsdogs.core.params import load_params
from catsdogs.core.progress import WorkEstimate
from catsdogs.core.seeding import seed_everything
from catsdogs.data import features as feature_files
from catsdogs.data.datasets import list_labelled_images, make_image_dataset
from catsdogs.models import vgg
from catsdogs.models.precision import set_mixed_precision
from catsdogs.models.software import software, tensorflow_devices

logger = logging.getLogger("extract_features")


def extract_features(
    split_dirs: dict[str, str | Path],
    output_dir: str | Path,
    image_size: int,
    batch_size: int,
    weights_file: str | Path,
    preprocessing: str,
    mixed_precision: bool | str,
) -> dict:
    """Extract features for each split in ``split_dirs`` into ``output_dir`` (replaced atomically).

    Returns the metadata written to ``output_dir/meta.json``, plus ``extract_seconds`` per
    split (returned, not written: timings would change the output's hash at every run).
    """
    listed = {split: list_labelled_images(directory) for split, directory in split_dirs.items()}
    policy = set_mixed_precision(mixed_precision)
    model = vgg.vgg16_image_model(vgg.build_vgg16_base(image_size, weights_file), preprocessing, image_size)
    meta: dict = {
        "image_size": image_size,
        "preprocessing": preprocessing,
        "weights": vgg.describe_weights(weights_file),
        "dtype_policy": policy,
        "software": software(tensorflow_devices()),  # results are bit-exact only on the same software
        "saved_dtype": "float32",
        "feature_shape": list(model.output_shape[1:]),
        "label_names": {str(i): name for i, name in enumerate(CLASS_FOLDERS)},
        "counts": {},  # no timings here: identical inputs give an identical features/ (DVC hash)
    }
    extract_seconds = {}
    total = sum(len(paths) for paths, _ in listed.values())
    estimate = WorkEstimate(logger, "features", total, "images", estimate_after=min(4 * batch_size, total))
    with atomic_path(output_dir) as temporary:
        temporary.mkdir(parents=True)
        for split, (paths, labels) in listed.items():
            root = Path(split_dirs[split])
            relative = [path.relative_to(root).as_posix() for path in paths]
            dataset = make_image_dataset(paths, None, image_size, batch_size)
            logger.info("%s: %d images from %s", split, len(paths), root)
            started = time.perf_counter()
            shape = feature_files.write_split(model, dataset, len(paths), temporary, split, estimate.update)
            seconds = extract_seconds[split] = time.perf_counter() - started
            feature_files.write_labels_and_files(temporary, split, labels, relative)
            meta["counts"][split] = {
                "total": len(paths),
                **{name: int(np.sum(labels == index)) for index, name in enumerate(CLASS_FOLDERS)},
            }
            logger.info("%s: features %s in %.1f s (%.1f images/s)", split, shape, seconds, len(paths) / seconds)
        (temporary / feature_files.META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return {**meta, "extract_seconds": extract_seconds}


def main() -> None:
    """Load params, extract the features of the train and validation splits into paths.features."""
    params = load_params()
    common, runtime = params.common, params.runtime
    require_folders(params.paths.split_manifest, params.paths.train, params.paths.validation)
    seed_everything(common.seed, runtime.deterministic)
    meta = extract_features(
        {"train": params.paths.train, "validation": params.paths.validation},
        params.paths.features,
        image_size=common.image_size,
        batch_size=common.batch_size,
        weights_file=params.paths.vgg16_weights,
        preprocessing=params.vgg16.preprocessing,
        mixed_precision=runtime.mixed_precision,
    )
    images = sum(counts["total"] for counts in meta["counts"].values())
    seconds = sum(meta["extract_seconds"].values())
    logger.info("features of %d images in %.1f s (%.1f images/s)", images, seconds, images / max(seconds, 1e-9))
