"""Stage reports: the figures (PNG, :mod:`catsdogs.report.figures`) and the markdown summary
(:mod:`catsdogs.report.summary`) of every model, the data and the params."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pandas as pd

from catsdogs.core.io import HISTORY_FILE, METRICS_FILE, PREDICTIONS_FILE, atomic_path, write_text
from catsdogs.core.manifest import require_folders
from catsdogs.core.params import PathsParams, load_params
from catsdogs.predict.metrics import best_model
from catsdogs.report.figures import (
    TRAINING_STAGES,
    convolution_figures,
    evaluation_figures,
    first_validation_dog,
    gallery_figure_file,
    history_figures,
    ordered_models,
    read_history,
    read_json,
)
from catsdogs.report.summary import read_summary_params, render_summary

logger = logging.getLogger("reports")


def build_reports(
    paths: PathsParams, image_size: int, clip: float, worst_images: int, summary_params: dict,
) -> list[Path]:
    """Draw every figure into ``paths.figures`` (replaced whole) and write the ``paths.summary`` markdown from the
    training stages' reports, evaluate's, the split's, the validation photos and the scratch model.

    The fine-tuning's history is optional (older runs had none).
    """
    training_reports = {"scratch": paths.scratch_reports, "top": paths.top_reports, "finetune": paths.finetune_reports}
    evaluate_dir, split_report, summary = paths.evaluate_reports, paths.split_report, paths.summary
    validation_dir, scratch_model, figures_dir = paths.validation, paths.scratch_model, paths.figures
    histories = {}
    for name, folder in training_reports.items():
        path = Path(folder) / HISTORY_FILE
        if name != "finetune" or path.is_file():
            histories[name] = read_history(path, TRAINING_STAGES.get(name, name))
    evaluate_dir = Path(evaluate_dir)
    metrics = ordered_models(read_json(evaluate_dir / METRICS_FILE, "evaluate"))
    table = pd.read_csv(evaluate_dir / PREDICTIONS_FILE)
    training = {}
    for name, folder in training_reports.items():
        report = Path(folder) / METRICS_FILE
        training[name] = json.loads(report.read_text(encoding="utf-8")) if report.is_file() else {}
    recipes = {name: run["recipe"] for name, run in training.items() if run.get("recipe")}
    validation_dir = Path(validation_dir)
    figures_dir = Path(figures_dir)
    with atomic_path(figures_dir) as temporary:
        temporary.mkdir(parents=True)
        written = history_figures(histories, temporary, recipes)
        written += evaluation_figures(evaluate_dir, metrics, table, temporary)
        written.append(gallery_figure_file(table, validation_dir, best_model(metrics), worst_images, temporary))
        written += convolution_figures(first_validation_dog(validation_dir), Path(scratch_model), image_size, temporary)
    figures = [figures_dir / path.name for path in written]
    summary_dir = Path(summary).parent
    links = [Path(os.path.relpath(path, summary_dir)).as_posix() for path in figures]
    text = render_summary(
        metrics, training, read_json(split_report, "split"), summary_params, best_model(metrics), links, clip,
    )
    write_text(summary, text)
    return figures


def main() -> None:
    """Load params, draw the figures and write the summary."""
    params = load_params()
    paths = params.paths
    require_folders(paths.split_manifest, paths.validation)
    figures = build_reports(
        paths, params.common.image_size, params.prediction.clip, params.reports.worst_images,
        read_summary_params(params),
    )
    logger.info("wrote %d figures to %s and %s", len(figures), paths.figures, paths.summary)
