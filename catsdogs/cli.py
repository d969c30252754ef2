"""The ``catsdogs`` command: ``catsdogs predict IMAGE_OR_FOLDER... [--model ...] [--format table|csv]``.

Prints, per image, the predicted label and P(dog) (clipped to
[prediction.clip, 1 - prediction.clip]). Images are untrusted: each passes the
split's checks first (accepted formats, ``images.max_pixels`` before any decode,
a full decode). Unusable files are reported on stderr with the reason and
skipped; the others are still predicted. Exit codes: 0 all predicted,
2 some file failed, 1 a usage or model error (one line on stderr).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import replace
from pathlib import Path

from catsdogs.core.runner import EXIT_ERROR, EXIT_OK  # noqa: F401  (exit codes the command documents)

EXIT_FILE_FAILED = 2
# Earlier spellings of model names that users may have scripted: --model finetuned still works.
MODEL_ALIASES = {"finetuned": "finetune"}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one sub-command per action (``predict`` for now)."""
    parser = argparse.ArgumentParser(prog="catsdogs", description="Cats vs. dogs classifiers built by the pipeline.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    predict = commands.add_parser(
        "predict",
        help="print the label and P(dog) of images",
        description="Predict cat or dog for image files and folders (their images, not sub-folders).",
    )
    predict.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER", help="image files or folders of images")
    predict.add_argument(
        "--model",
        default="best",
        help="best (lowest validation log loss, from the evaluate stage), scratch, top, finetune, "
        "ensemble (the mean of the trained models), or the path of a .keras model (default: best)",
    )
    predict.add_argument(
        "--tta", action=argparse.BooleanOptionalAction, default=None,
        help="average P(dog) over each image and its mirror image, for every model (default: prediction.tta in "
        "the params; auto: every model but those built on VGG16)",
    )
    predict.add_argument("--format", choices=("table", "csv"), default="table", help="output format (default: table)")
    predict.add_argument(
        "--params", default="params.yaml", help="params file for model paths, image size and clip (default: params.yaml)"
    )
    predict.add_argument("--batch-size", type=int, default=None, help="images per batch (default: common.batch_size)")
    return parser


def load_settings(params_file: str):
    """The validated params; the defaults when the default params.yaml is absent (outside the repository)."""
    from catsdogs.core.params import Params, load_params

    if params_file == "params.yaml" and not Path(params_file).is_file():
        return Params()
    return load_params(params_file, check_tracked=False)  # predict reads the paths, never writes them


def resolve_model_name(name: str, params) -> str:
    """The model for ``--model``: ``best`` becomes the lowest validation log loss; old spellings their new names."""
    from catsdogs.core.io import METRICS_FILE
    from catsdogs.predict.metrics import best_model_in

    if name == "best":
        metrics_file = Path(params.paths.evaluate_reports) / METRICS_FILE
        name = best_model_in(
            metrics_file,
            f"--model best needs {metrics_file} (run the pipeline: dvc repro), or name a model: "
            "--model scratch|top|finetune|ensemble|PATH",
        )
    return MODEL_ALIASES.get(name, name)


def printable(text: str) -> str:
    """``text`` for a terminal: control and other unprintable characters (newlines, escape sequences) as
    Python escapes, so a file name cannot forge a row or a line of the output."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)


def format_results(results, threshold: float, output_format: str) -> str:
    """The predicted rows as an aligned table (file names made :func:`printable`) or as CSV
    (file,label,p_dog; the csv module quotes what needs it)."""
    from catsdogs.core.labels import CLASS_LABELS

    shown = str if output_format == "csv" else printable
    rows = [
        (shown(str(result.path)), CLASS_LABELS[int(result.probability >= threshold)], f"{result.probability:.4f}")
        for result in results
        if result.error is None
    ]
    header = ("file", "label", "p_dog")
    if output_format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        return buffer.getvalue()
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines) + "\n"


def predict_command(arguments) -> int:
    """Run ``catsdogs predict``; returns the exit code."""
    from catsdogs.core.io import METRICS_FILE
    from catsdogs.predict.metrics import temperature_in
    from catsdogs.predict.predictor import (
        ENSEMBLE,
        ModelFiles,
        PredictionSettings,
        Predictor,
        expand_inputs,
        load_predictor,
    )

    params = load_settings(arguments.params)
    files = expand_inputs(arguments.inputs)
    if not files:
        raise ValueError(f"no image files (.jpg, .jpeg, .png) in {', '.join(arguments.inputs)}")
    batch_size = arguments.batch_size or params.common.batch_size
    if batch_size < 1:
        raise ValueError("--batch-size must be at least 1")
    prediction = params.prediction
    name = resolve_model_name(arguments.model, params)
    settings = PredictionSettings(
        params.common.image_size, batch_size, prediction.clip, prediction.tta if arguments.tta is None else arguments.tta,
        params.images.max_pixels,
    )
    predictor = load_predictor(name, ModelFiles.of(params), settings)
    # A model given by its path has no calibration of its own.
    if prediction.calibrate and (name in params.paths.model_files() or name == ENSEMBLE):
        temperature = temperature_in(Path(params.paths.evaluate_reports) / METRICS_FILE, name)
        predictor = Predictor(predictor.model, replace(settings, temperature=temperature))
    results = predictor.predict_files(files)
    failed = [result for result in results if result.error is not None]
    sys.stdout.write(format_results(results, prediction.threshold, arguments.format))
    sys.stdout.flush()
    for result in failed:
        print(f"catsdogs predict: cannot read {printable(str(result.path))}: {result.error}", file=sys.stderr)
    if failed:
        print(f"catsdogs predict: {len(failed)} of {len(results)} files failed", file=sys.stderr)
        return EXIT_FILE_FAILED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``catsdogs`` console script; returns the exit code (the script exits with it)."""
    from catsdogs.core.quiet import quiet_tensorflow
    from catsdogs.core.runner import run_command

    arguments = build_parser().parse_args(argv)
    quiet_tensorflow()
    return run_command(arguments.command, lambda: predict_command(arguments))


if __name__ == "__main__":
    sys.exit(main())
