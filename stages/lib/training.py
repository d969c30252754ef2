"""Training helpers shared by train_scratch, train_top and finetune.

Precision and distribution policy, Keras verbosity, safe model loading, atomic
model saving, and the per-epoch reports every training stage writes:

- ``<reports>/history.csv``: epoch, loss, accuracy, val_loss, val_accuracy
  (the source of ``dvc plots`` and of the figures);
- ``<reports>/metrics.json``: the run's summary (``dvc metrics``);
- ``<reports>/live/``: the same per-epoch values logged with dvclive.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
from pathlib import Path

from stages.lib.io import atomic_path, metrics_for_json, write_json, write_text

logger = logging.getLogger(__name__)

HISTORY_COLUMNS = ("loss", "accuracy", "val_loss", "val_accuracy")


def fit_verbosity() -> int:
    """Keras ``verbose``: a progress bar in a terminal, one line per epoch otherwise (CI, logs)."""
    return 1 if sys.stdout.isatty() else 2


def set_mixed_precision(enabled: bool) -> str:
    """Set the global Keras dtype policy: bfloat16 on CPU, float16 on GPU, float32 when disabled."""
    import keras
    import tensorflow as tf

    if not enabled:
        policy = "float32"
    elif tf.config.list_physical_devices("GPU"):
        policy = "mixed_float16"
    else:
        policy = "mixed_bfloat16"
    keras.mixed_precision.set_global_policy(policy)
    logger.info("dtype policy: %s", policy)
    return policy


def select_strategy(name: str):
    """The tf.distribute strategy for ``name`` (auto: mirrored when more than one GPU is visible)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "none"
    if name == "none":
        strategy = tf.distribute.get_strategy()
    elif name == "mirrored":
        devices = None  # MirroredStrategy's default: every GPU, else the one CPU
        logical_cpus = tf.config.list_logical_devices("CPU")
        if not gpus and len(logical_cpus) > 1:  # CPU split into logical devices (tests, a CPU box)
            devices = [device.name for device in logical_cpus]
        strategy = tf.distribute.MirroredStrategy(devices)
    elif name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "train strategy 'multiworker' needs TF_CONFIG (the cluster and this worker's index) "
                "in the environment; see README 'Several machines'"
            )
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        raise ValueError(f"unknown strategy {name!r}; allowed: auto, none, mirrored, multiworker")
    logger.info("distribution: %s with %d replica(s)", name, strategy.num_replicas_in_sync)
    return strategy


def save_model(model, target: str | Path) -> None:
    """Save a Keras model atomically: a failed save leaves no partial file at ``target``."""
    target = Path(target)
    try:
        with atomic_path(target) as temporary:
            model.save(temporary)
    except OSError as error:
        raise OSError(f"could not save the model to {target}: {error}") from error


def load_model(path: str | Path):
    """Load a ``.keras`` model in Keras safe mode, with a clear error when it is missing or broken."""
    import keras

    import stages.lib.vgg  # noqa: F401  registers the VGG16 preprocessing layer for safe-mode loading

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model not found: {path} (run the stage that trains it: dvc repro)")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # Keras raises many types for a broken archive
        raise ValueError(f"could not load the model {path}: {error}") from error


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


def summarize_history(history: dict[str, list[float]]) -> dict[str, float | int]:
    """Final and best validation figures: the metrics every training stage reports."""
    val_loss = [float(v) for v in history.get("val_loss", [])]
    val_accuracy = [float(v) for v in history.get("val_accuracy", [])]
    if not val_loss:
        raise ValueError("the training history has no validation loss")
    best = min(range(len(val_loss)), key=lambda i: (val_loss[i], i))
    return {
        "epochs_run": len(val_loss),
        "best_epoch": best + 1,
        "best_val_loss": val_loss[best],
        "best_val_accuracy": val_accuracy[best] if val_accuracy else math.nan,
        "final_val_loss": val_loss[-1],
        "final_val_accuracy": val_accuracy[-1] if val_accuracy else math.nan,
    }


def write_training_reports(reports_dir: str | Path, history: dict[str, list[float]], summary: dict) -> None:
    """Write history.csv, dvclive's per-epoch logs and metrics.json into ``reports_dir``, atomically."""
    from dvclive import Live

    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    rows = history_rows(history)
    # No epochs (a skipped stage): still the full header, so readers find every column.
    columns = ["epoch", *[c for c in HISTORY_COLUMNS if not rows or c in rows[0]]]
    lines = [",".join(columns)]
    lines += [",".join(f"{row[c]:.6g}" if c != "epoch" else str(row[c]) for c in columns) for row in rows]
    write_text(reports_dir / "history.csv", "\n".join(lines) + "\n")

    # dvclive writes in place: log into a temporary folder, then move it in whole.
    with atomic_path(reports_dir / "live") as live_dir:
        with Live(dir=str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None) as live:
            for row in rows:
                for column in columns[1:]:
                    name = ("eval/" if column.startswith("val_") else "train/") + column.removeprefix("val_")
                    live.log_metric(name, row[column])
                live.next_step()
    write_json(reports_dir / "metrics.json", metrics_for_json(summary))


def clear_directory(path: str | Path) -> None:
    """Remove a folder's contents (a stage's stale outputs) and recreate it empty."""
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
