"""Scoring the validation split: every trained model's raw P(dog) for the validation photos, the image
models from the photos (mirror-averaged as prediction.tta says), the top classifier from the extracted features
(reordered to the photos' order, refused when stale)."""


from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from catsdogs.core.labels import CLASS_LABELS
from catsdogs.core.progress import prediction_estimate_callback
from catsdogs.data import features as feature_files
from catsdogs.data.datasets import list_labelled_images
from catsdogs.models.files import load_model
from catsdogs.predict.predictor import (
    mirrors,
    model_image_size,
    predict_array,
    predict_dataset,
    takes_images,
    with_mirror_average,
)

logger = logging.getLogger("evaluate")  # its lines belong to the evaluate stage


@dataclass(frozen=True)
class ValidationImages:
    """The validation photos, their names relative to the folder (``cats/cat.1.jpg``) and their labels."""

    paths: list[Path]
    names: list[str]
    labels: np.ndarray


def validation_images(directory: str | Path) -> ValidationImages:
    """The validation photos of ``directory``, listed once for every model."""
    paths, labels = list_labelled_images(directory)
    root = Path(directory)
    return ValidationImages(paths, [path.relative_to(root).as_posix() for path in paths], labels)


def predict_top_from_features(model, features_dir: str | Path, names: list[str], labels, batch_size: int):
    """The top classifier's raw P(dog) from features/validation_*, reordered to match ``names``.

    ``ValueError`` when the features were extracted from other images than the
    validation folder holds now (stale features: rerun extract_features).
    """
    features, feature_labels = feature_files.load_split(features_dir, "validation")
    listed = feature_files.split_files(features_dir, "validation")["files"].read_text(encoding="utf-8").splitlines()
    if sorted(listed) != sorted(names):
        raise ValueError(
            f"{features_dir}/validation_files.txt lists {len(listed)} images that differ from the "
            f"{len(names)} in the validation folder: rerun extract_features (dvc repro)"
        )
    row_of = {name: row for row, name in enumerate(listed)}
    order = np.array([row_of[name] for name in names])
    if not np.array_equal(np.asarray(feature_labels)[order], np.asarray(labels)):
        raise ValueError(f"{features_dir}/validation_labels.npy disagrees with the class folders")
    return predict_array(model, np.asarray(features)[order], batch_size)


def predict_model(
    name: str, path: Path, validation: ValidationImages, features_dir: str | Path, image_size: int, batch_size: int,
    tta: bool | str,
) -> tuple[np.ndarray, bool]:
    """Raw P(dog) of one saved model for the validation images, in ``paths`` order, and whether it was
    mirror-averaged.

    Image models are mirror-averaged as ``tta`` says (:func:`~catsdogs.predict.predictor.mirrors`); the
    top classifier reads the extracted features, which hold no mirror images, so it is scored without.
    """
    model = load_model(path)
    if takes_images(model):
        image_size = model_image_size(model, image_size)
        mirrored = mirrors(model, tta)
        logger.info("%s: predicting %d images at %dx%d%s", name, len(validation.paths), image_size, image_size,
                    " and their mirror images" if mirrored else "")
        return predict_dataset(with_mirror_average(model) if mirrored else model, validation.paths, image_size,
                               batch_size, [prediction_estimate_callback(logger, name)]), mirrored
    logger.info("%s: predicting from the bottleneck features in %s", name, features_dir)
    return predict_top_from_features(model, features_dir, validation.names, validation.labels, batch_size), False


def predictions_table(names: list[str], labels, probabilities: dict[str, np.ndarray], threshold: float) -> pd.DataFrame:
    """One row per image: file, label, actual class name, and per model P(dog) and predicted class name."""
    labels = np.asarray(labels)
    table = pd.DataFrame({"file": names, "label": labels, "actual": [CLASS_LABELS[i] for i in labels]})
    for name, values in probabilities.items():
        table[f"p_{name}"] = np.round(values, 6)
        table[f"{name}_predicted"] = np.where(values >= threshold, CLASS_LABELS[1], CLASS_LABELS[0])
    return table
