"""Classification metrics for P(dog) predictions, and the plot data DVC's templates read.

Labels are 0 (cat) and 1 (dog). Every metric is computed on the probabilities
as the models' users see them: clipped to ``[clip, 1 - clip]`` (Kaggle's log
loss punishes a confident mistake without bound; clipping caps that cost).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from catsdogs.core.labels import CLASS_LABELS

TEMPERATURE_BOUNDS = (0.05, 20.0)


def clip_probabilities(probabilities, clip: float) -> np.ndarray:
    """P(dog) as float64, clipped to ``[clip, 1 - clip]`` (``clip`` in (0, 0.5))."""
    if not 0 < clip < 0.5:
        raise ValueError(f"clip must be in (0, 0.5), got {clip}")
    values = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(values)):
        raise ValueError("predictions contain NaN or infinite values (a diverged model?)")
    return np.clip(values, clip, 1.0 - clip)


def apply_temperature(probabilities, temperature: float) -> np.ndarray:
    """P(dog) with its logit divided by ``temperature``: above 1 less confident, below 1 more; 1 unchanged."""
    values = np.clip(np.asarray(probabilities, dtype=np.float64).reshape(-1), 1e-12, 1 - 1e-12)
    if temperature == 1.0:
        return values
    return 1.0 / (1.0 + np.exp(-np.log(values / (1.0 - values)) / temperature))


def fit_temperature(labels, probabilities, clip: float) -> float:
    """The temperature that minimises the log loss of the clipped, rescaled P(dog) on these labels."""
    from scipy.optimize import minimize_scalar
    from sklearn.metrics import log_loss

    labels, probabilities = _check_inputs(labels, probabilities)
    if len(np.unique(labels)) < 2:
        return 1.0

    def loss(temperature: float) -> float:
        return log_loss(labels, np.clip(apply_temperature(probabilities, temperature), clip, 1 - clip), labels=[0, 1])

    return float(minimize_scalar(loss, bounds=TEMPERATURE_BOUNDS, method="bounded").x)


def cross_fitted_log_loss(labels, probabilities, clip: float, folds: int = 2) -> float:
    """Log loss of temperature-calibrated P(dog) on photos its temperature was not fitted on.

    The photos are dealt into ``folds`` interleaved folds; each fold is scored with the
    temperature fitted on the others. An honest estimate of what calibration gives on
    new photos, which the log loss after fitting on all of them is not.
    """
    from sklearn.metrics import log_loss

    labels, probabilities = _check_inputs(labels, probabilities)
    calibrated = np.empty_like(probabilities)
    for fold in range(folds):
        held = np.arange(labels.size) % folds == fold
        temperature = fit_temperature(labels[~held], probabilities[~held], clip)
        calibrated[held] = apply_temperature(probabilities[held], temperature)
    return float(log_loss(labels, np.clip(calibrated, clip, 1 - clip), labels=[0, 1]))


def predicted_labels(probabilities, threshold: float) -> np.ndarray:
    """Class 1 (dog) where P(dog) >= threshold, else 0 (cat)."""
    return (np.asarray(probabilities, dtype=np.float64).reshape(-1) >= threshold).astype(np.int64)


def _check_inputs(labels, probabilities) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if labels.shape != probabilities.shape:
        raise ValueError(f"{labels.size} labels but {probabilities.size} predictions: they must match row by row")
    if labels.size == 0:
        raise ValueError("no predictions to evaluate")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (cat) or 1 (dog)")
    return labels, probabilities


def confusion_counts(labels, predicted) -> np.ndarray:
    """The 2x2 confusion matrix: rows are the actual class, columns the predicted class (cat, dog)."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(np.asarray(labels).reshape(-1), np.asarray(predicted).reshape(-1), labels=[0, 1])


def classification_metrics(labels, probabilities, threshold: float = 0.5) -> dict:
    """Accuracy, log loss, ROC AUC, per-class precision/recall/F1 and confusion counts.

    ``probabilities`` should already be clipped (see :func:`clip_probabilities`).
    ROC AUC is NaN when the labels hold only one class. Confusion counts are named
    ``<actual>_as_<predicted>`` so ``dvc metrics diff`` shows each cell.
    """
    from sklearn.metrics import accuracy_score, log_loss, precision_recall_fscore_support, roc_auc_score

    labels, probabilities = _check_inputs(labels, probabilities)
    predicted = predicted_labels(probabilities, threshold)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=[0, 1], zero_division=0
    )
    both_classes = len(np.unique(labels)) == 2
    matrix = confusion_counts(labels, predicted)
    return {
        "n": int(labels.size),
        "accuracy": float(accuracy_score(labels, predicted)),
        "log_loss": float(log_loss(labels, probabilities, labels=[0, 1])),
        "roc_auc": float(roc_auc_score(labels, probabilities)) if both_classes else float("nan"),
        "precision": {name: float(precision[i]) for i, name in enumerate(CLASS_LABELS)},
        "recall": {name: float(recall[i]) for i, name in enumerate(CLASS_LABELS)},
        "f1": {name: float(f1[i]) for i, name in enumerate(CLASS_LABELS)},
        "support": {name: int(support[i]) for i, name in enumerate(CLASS_LABELS)},
        "confusion": {
            f"{actual}_as_{predicted_name}": int(matrix[i, j])
            for i, actual in enumerate(CLASS_LABELS)
            for j, predicted_name in enumerate(CLASS_LABELS)
        },
    }


def roc_points(labels, probabilities) -> list[dict[str, float]]:
    """ROC curve rows (fpr, tpr, threshold) for DVC's line templates; empty with one class only."""
    from sklearn.metrics import roc_curve

    labels, probabilities = _check_inputs(labels, probabilities)
    if len(np.unique(labels)) < 2:
        return []
    fpr, tpr, thresholds = roc_curve(labels, probabilities, drop_intermediate=True)
    # roc_curve's first threshold is +inf (nothing predicted positive): JSON/CSV want a number.
    thresholds = np.minimum(thresholds, 1.0)
    return [
        {"fpr": round(float(f), 6), "tpr": round(float(t), 6), "threshold": round(float(h), 6)}
        for f, t, h in zip(fpr, tpr, thresholds)
    ]


def best_model_in(metrics_file: str | Path, missing: str) -> str:
    """The best model in the evaluate stage's metrics file; ValueError(``missing``) when there is none."""
    metrics_file = Path(metrics_file)
    if not metrics_file.is_file():
        raise ValueError(missing)
    return best_model(json.loads(metrics_file.read_text(encoding="utf-8")))


def temperature_in(metrics_file: str | Path, model: str) -> float:
    """The calibration temperature the evaluate stage fitted for ``model`` (1.0: none recorded)."""
    metrics_file = Path(metrics_file)
    if not metrics_file.is_file():
        return 1.0
    values = json.loads(metrics_file.read_text(encoding="utf-8")).get(model, {})
    temperature = values.get("temperature") if isinstance(values, dict) else None
    return float(temperature) if temperature else 1.0


def best_model(metrics_by_model: dict[str, dict]) -> str:
    """The model with the lowest validation log loss (ties: the first in the given order)."""
    candidates = [
        (values["log_loss"], index, name)
        for index, (name, values) in enumerate(metrics_by_model.items())
        if isinstance(values, dict) and np.isfinite(values.get("log_loss", np.nan))
    ]
    if not candidates:
        raise ValueError("no model has a validation log loss: run the evaluate stage first")
    return min(candidates)[2]
