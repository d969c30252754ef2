"""Stage evaluate: every trained model's predictions on the validation split, and their metrics.

The image models (scratch, finetune) read the validation images; the top
classifier reads the validation features (it takes VGG16 features; rows match
the features' file list). P(dog) is clipped to [prediction.clip, 1 - prediction.clip].
Writes, in the evaluate reports folder:

- ``metrics.json``: per model accuracy, log loss (Kaggle's metric), ROC AUC,
  per-class precision/recall/F1 and confusion counts (``dvc metrics``);
- ``predictions.csv``: one row per validation image: file, label, actual, and per
  model P(dog) (``p_<model>``) and the predicted class (``<model>_predicted``),
  the source of the confusion plot, the figures and the error analysis;
- ``roc/<model>.csv``: the ROC curve (fpr, tpr, threshold) for ``dvc plots``.

A model whose file is absent is skipped with a warning (outside DVC; in the
pipeline every model exists).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from catsdogs.core.io import (
    METRICS_FILE,
    PREDICTIONS_FILE,
    ROC_FOLDER,
    atomic_path,
    metrics_for_json,
    write_json,
    write_text,
)
from catsdogs.core.manifest import require_folders
from catsdogs.core.params import MODEL_NAMES, load_params
from catsdogs.predict.metrics import (
    classification_metrics,
    clip_probabilities,
    cross_fitted_log_loss,
    fit_temperature,
    roc_points,
)
from catsdogs.predict.predictor import (
    ENSEMBLE,
)
from catsdogs.predict.validation import predict_model, predictions_table, validation_images

logger = logging.getLogger("evaluate")


def evaluate(
    validation_dir: str | Path, features_dir: str | Path, model_files: dict[str, Path], *, image_size: int,
    batch_size: int, clip: float, threshold: float, tta: bool | str,
) -> tuple[dict, pd.DataFrame, dict]:
    """Predict and score every present model, and their ensemble (the mean P(dog)) when there are two or
    more; returns (metrics by model, predictions table, ROC points)."""
    validation = validation_images(validation_dir)
    names, labels = validation.names, validation.labels
    raw: dict[str, np.ndarray] = {}
    probabilities: dict[str, np.ndarray] = {}
    mirrored: dict[str, bool] = {}
    for name, path in model_files.items():
        if not Path(path).is_file():
            logger.warning("%s: no model at %s, skipped", name, path)
            continue
        raw[name], mirrored[name] = predict_model(name, Path(path), validation, features_dir, image_size,
                                                  batch_size, tta)
        probabilities[name] = clip_probabilities(raw[name], clip)
    if not probabilities:
        raise ValueError(f"no trained model found ({', '.join(MODEL_NAMES)}): run the training stages first")
    if len(raw) > 1:  # as the ensemble model computes it: the mean of the raw P(dog), then clipped
        raw[ENSEMBLE] = np.mean(list(raw.values()), axis=0)
        mirrored[ENSEMBLE] = any(mirrored.values())
        probabilities[ENSEMBLE] = clip_probabilities(raw[ENSEMBLE], clip)
    metrics = {}
    roc = {}
    for name, values in probabilities.items():
        scores = classification_metrics(labels, values, threshold)
        # Calibration, reported honestly: the temperature fitted on every validation photo (what the
        # submission and `catsdogs predict` apply when prediction.calibrate is on) and the log loss that
        # calibration gives on photos its temperature was not fitted on.
        scores["temperature"] = fit_temperature(labels, raw[name], clip)
        scores["calibrated_log_loss_cross_fitted"] = cross_fitted_log_loss(labels, raw[name], clip)
        metrics[name] = metrics_for_json(scores)
        metrics[name]["tta"] = mirrored[name]  # this model's photos were mirror-averaged (the ensemble: some)
        roc[name] = roc_points(labels, values)
        logger.info(
            "%s: accuracy %.4f, log loss %.4f, ROC AUC %s", name, metrics[name]["accuracy"],
            metrics[name]["log_loss"], metrics[name]["roc_auc"],
        )
    return metrics, predictions_table(names, labels, probabilities, threshold), roc


def write_reports(output_dir: str | Path, metrics: dict, table: pd.DataFrame, roc: dict) -> None:
    """Write metrics.json, predictions.csv and roc/<model>.csv (each atomically)."""
    output_dir = Path(output_dir)
    write_json(output_dir / METRICS_FILE, metrics)
    write_text(output_dir / PREDICTIONS_FILE, table.to_csv(index=False, lineterminator="\n"))
    with atomic_path(output_dir / ROC_FOLDER) as folder:
        folder.mkdir(parents=True)
        for name, rows in roc.items():
            frame = pd.DataFrame(rows, columns=["fpr", "tpr", "threshold"])
            (folder / f"{name}.csv").write_text(frame.to_csv(index=False, lineterminator="\n"), encoding="utf-8")


def main() -> None:
    """Load params, evaluate every model on the validation split, write the reports."""
    params = load_params()
    paths, section = params.paths, params.prediction
    require_folders(paths.split_manifest, paths.validation)
    metrics, table, roc = evaluate(
        paths.validation, paths.features, paths.model_files(), image_size=params.common.image_size,
        batch_size=params.common.batch_size, clip=section.clip, threshold=section.threshold, tta=section.tta,
    )
    write_reports(paths.evaluate_reports, metrics, table, roc)
    logger.info("wrote %s (%d images, models: %s)", paths.evaluate_reports, len(table), ", ".join(metrics))
