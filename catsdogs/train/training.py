"""What every training stage (train_scratch, train_top, finetune) does when its training ends, and records.

The end of training, written once: :func:`summarize_run` (history, timing, counts, the
chance check), :func:`report_chance`, :func:`save_outputs` (model, then reports).

One summary with the same keys in every stage's ``metrics.json`` (so ``dvc
metrics diff`` lines them up): epochs run, best epoch, best and final validation
loss and accuracy, training time, seconds per epoch and training images per
second. Beside it, in the stage's reports folder:

- ``history.csv``: epoch, loss, accuracy, val_loss, val_accuracy (the source of
  ``dvc plots`` and of the figures);
- ``live/metrics.json``: the last epoch's step, loss and accuracy in dvclive's layout, a
  metric in dvc.yaml. The stage's :func:`catsdogs.train.live.live_callback` writes it at
  the end of every epoch while training runs (``dvc metrics show`` / ``dvc exp show``
  follow a run's progress); :func:`write_training_reports` writes it once more, complete,
  with the other reports.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from catsdogs.core.io import (
    HISTORY_FILE,
    LIVE_FOLDER,
    METRICS_FILE,
    metrics_for_json,
    remove_path,
    write_json,
    write_text,
)

HISTORY_COLUMNS = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclass(frozen=True)
class TrainingFiles:
    """What a training stage reads and writes: the image folders, the model file, the reports folder, and
    the folder of resume backups (None: no resuming)."""

    train: str | Path
    validation: str | Path
    model: str | Path
    reports: str | Path
    backups: str | Path | None = None

    @classmethod
    def of(cls, paths, model: str, resumable: bool = True) -> "TrainingFiles":
        """A model's files from the validated ``paths`` params: ``paths.<model>_model`` and
        ``paths.<model>_reports`` (the names :data:`catsdogs.core.params.MODEL_NAMES` gives)."""
        return cls(paths.train, paths.validation, getattr(paths, f"{model}_model"), getattr(paths, f"{model}_reports"),
                   paths.backups if resumable else None)


def settings_key(*configs, **named) -> dict:
    """What a resume backup is keyed by: the typed configs (params sections) that decide what a stage
    computes, as plain data, so a backup from other settings is never resumed."""
    settings = {type(config).__name__: config.model_dump(mode="json") for config in configs}
    for name, value in named.items():
        settings[name] = value.model_dump(mode="json") if hasattr(value, "model_dump") else value
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


def fit_verbosity() -> int:
    """Keras ``verbose``: a progress bar in a terminal, one line per epoch otherwise (CI, logs)."""
    return 1 if sys.stdout.isatty() else 2


def history_rows(history: dict[str, list[float]]) -> list[dict[str, float]]:
    """Per-epoch rows (epoch numbered from 1) from a Keras ``History.history`` mapping."""
    epochs = len(history.get("loss", []))
    rows = []
    for index in range(epochs):
        row: dict[str, float] = {"epoch": index + 1}
        for column in HISTORY_COLUMNS:
            values = history.get(column)
            if values is not None and index < len(values):
                row[column] = float(values[index])
        rows.append(row)
    return rows


def summarize_history(history: dict[str, list[float]], *, watched_from: int = 0) -> dict[str, float | int]:
    """Final and best validation figures: the metrics every training stage reports.

    The best epoch is the one whose weights early stopping keeps, chosen as
    ``keras.callbacks.EarlyStopping(start_from_epoch=watched_from)`` chooses it: the first
    lowest val_loss among epochs ``watched_from`` (0-based) and later, or the last epoch
    when training ended before any epoch was watched (nothing was restored).
    """
    val_loss = [float(v) for v in history.get("val_loss", [])]
    val_accuracy = [float(v) for v in history.get("val_accuracy", [])]
    if not val_loss:
        raise ValueError("the training history has no validation loss")
    watched = range(watched_from, len(val_loss)) if len(val_loss) > watched_from else [len(val_loss) - 1]
    best = min(watched, key=lambda i: (val_loss[i], i))
    return {
        "epochs_run": len(val_loss),
        "best_epoch": best + 1,
        "best_val_loss": val_loss[best],
        "best_val_accuracy": val_accuracy[best] if val_accuracy else math.nan,
        "final_val_loss": val_loss[-1],
        "final_val_accuracy": val_accuracy[-1] if val_accuracy else math.nan,
    }


def timing_summary(seconds: float, train_count: int, epochs_run: int) -> dict[str, float]:
    """Training time, seconds per epoch and training images per second (validation time included)."""
    return {
        "training_seconds": round(seconds, 2),
        "seconds_per_epoch": round(seconds / epochs_run, 3) if epochs_run else math.nan,
        "images_per_second": round(train_count * epochs_run / seconds, 2) if seconds > 0 else math.nan,
    }


CHANCE_Z = 2.33  # one-sided 99%: an accuracy this many standard errors above chance is not luck


def chance_check(best_val_accuracy: float, validation_labels) -> dict:
    """Whether the best validation accuracy is within noise of chance, for the metrics.

    Chance is the accuracy of always answering the larger class; the noise is
    :data:`CHANCE_Z` standard errors of an accuracy measured on this many images.
    """
    import numpy as np

    labels = np.asarray(validation_labels).reshape(-1)
    if labels.size == 0 or not math.isfinite(best_val_accuracy):
        return {"chance_accuracy": math.nan, "at_chance": False}
    chance = max(float(np.mean(labels == 1)), float(np.mean(labels == 0)))
    noise = CHANCE_Z * math.sqrt(chance * (1 - chance) / labels.size)
    return {"chance_accuracy": chance, "at_chance": bool(best_val_accuracy <= chance + noise)}


def summarize_run(history: dict, seconds: float, train_count: int, validation_labels, *, watched_from: int = 0) -> dict:
    """The metrics every training stage reports: :func:`summarize_history`, :func:`timing_summary`, the image
    counts and :func:`chance_check`."""
    summary = summarize_history(history, watched_from=watched_from)
    summary |= timing_summary(seconds, train_count, summary["epochs_run"])
    summary |= {"train_count": train_count, "validation_count": len(validation_labels)}
    summary |= chance_check(summary["best_val_accuracy"], validation_labels)
    return summary


def save_outputs(model, files: TrainingFiles, history: dict, summary: dict, backup=None) -> None:
    """The model first (a failed save leaves no fresh reports behind), then the reports (the metrics with the
    software that computed them, :mod:`catsdogs.models.software`); then the resume ``backup`` (a
    :class:`catsdogs.train.resume.Backup`), which the saved run no longer needs, is removed."""
    from catsdogs.models.files import save_model
    from catsdogs.models.software import software, tensorflow_devices

    save_model(model, files.model)
    write_training_reports(files.reports, history, {**summary, "software": software(tensorflow_devices())})
    if backup is not None:
        backup.remove()


def report_chance(logger, stage: str, summary: dict, fail: bool, advice: str) -> None:
    """Warn loudly (or raise ``ValueError`` when ``fail``) when the run ended within noise of chance."""
    if not summary.get("at_chance"):
        return
    message = (
        f"{stage}: best validation accuracy {summary['best_val_accuracy']:.1%} is within noise of chance "
        f"({summary['chance_accuracy']:.1%} for always answering the larger class, on {summary['validation_count']} "
        f"validation images): the model did not learn. Likely causes: {advice}, too few images (split.n), "
        f"or labels that do not match the photos."
    )
    if fail:
        raise ValueError(message + " (common.fail_at_chance is true)")
    logger.warning("%s Set common.fail_at_chance: true to make this an error.", message)


def write_training_reports(reports_dir: str | Path, history: dict[str, list[float]], summary: dict) -> None:
    """Write history.csv, live/metrics.json (the last epoch, :func:`catsdogs.train.live.live_summary`) and
    metrics.json into ``reports_dir``, each atomically."""
    from catsdogs.train.live import write_live_summary

    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    rows = history_rows(history)
    # No epochs (a skipped stage): still the full header, so readers find every column.
    columns = ["epoch", *[c for c in HISTORY_COLUMNS if not rows or c in rows[0]]]
    lines = [",".join(columns)]
    lines += [",".join(f"{row[c]:.6g}" if c != "epoch" else str(row[c]) for c in columns) for row in rows]
    write_text(reports_dir / HISTORY_FILE, "\n".join(lines) + "\n")
    remove_path(reports_dir / LIVE_FOLDER / "plots")  # per-epoch .tsv files an earlier version logged there
    write_live_summary(reports_dir, history)
    write_json(reports_dir / METRICS_FILE, metrics_for_json(summary))
