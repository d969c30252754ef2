"""The ``catsdogs`` command: ``catsdogs predict IMAGE_OR_FOLDER... [--model ...] [--format table|csv]``.

Prints, per image, the predicted label and P(dog) (clipped to
[evaluate.clip, 1 - evaluate.clip]). Unreadable files are reported on stderr
and skipped; the others are still predicted. Exit codes: 0 all predicted,
2 some file failed, 1 a usage or model error (one line on stderr).
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_FILE_FAILED = 2


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
        help="best (lowest validation log loss, from the evaluate stage), scratch, top, finetuned, "
        "or the path of a .keras model (default: best)",
    )
    predict.add_argument("--format", choices=("table", "csv"), default="table", help="output format (default: table)")
    predict.add_argument(
        "--params", default="params.yaml", help="params file for model paths, image size and clip (default: params.yaml)"
    )
    predict.add_argument("--batch-size", type=int, default=None, help="images per batch (default: common.batch_size)")
    return parser


def load_settings(params_file: str):
    """The validated params; the defaults when the default params.yaml is absent (outside the repository)."""
    from stages.lib.params import Params, load_params

    if params_file == "params.yaml" and not Path(params_file).is_file():
        return Params()
    return load_params(params_file)


def resolve_model_name(name: str, params) -> str:
    """``best`` becomes the model with the lowest validation log loss; other names pass through."""
    if name != "best":
        return name
    from stages.lib.metrics import best_model_in

    metrics_file = Path(params.paths.evaluate_reports) / "metrics.json"
    return best_model_in(
        metrics_file,
        f"--model best needs {metrics_file} (run the pipeline: dvc repro), or name a model: "
        "--model scratch|top|finetuned|PATH",
    )


def format_results(results, threshold: float, output_format: str) -> str:
    """The predicted rows as an aligned table or as CSV (file,label,p_dog)."""
    from stages.lib.metrics import CLASS_LABELS

    rows = [
        (str(result.path), CLASS_LABELS[int(result.probability >= threshold)], f"{result.probability:.4f}")
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
    from stages.lib.predict import expand_inputs, load_image_model, model_image_size, predict_files

    params = load_settings(arguments.params)
    files = expand_inputs(arguments.inputs)
    if not files:
        raise ValueError(f"no image files (.jpg, .jpeg, .png) in {', '.join(arguments.inputs)}")
    model_name = resolve_model_name(arguments.model, params)
    model = load_image_model(model_name, params)
    batch_size = arguments.batch_size or params.common.batch_size
    if batch_size < 1:
        raise ValueError("--batch-size must be at least 1")
    results = predict_files(model, files, model_image_size(model, params.common.image_size), batch_size, params.evaluate.clip)
    failed = [result for result in results if result.error is not None]
    sys.stdout.write(format_results(results, params.evaluate.threshold, arguments.format))
    sys.stdout.flush()
    for result in failed:
        print(f"catsdogs predict: cannot read {result.path}: {result.error}", file=sys.stderr)
    if failed:
        print(f"catsdogs predict: {len(failed)} of {len(results)} files failed", file=sys.stderr)
        return EXIT_FILE_FAILED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``catsdogs`` console script; returns the exit code (the script exits with it)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter is not output
    parser = build_parser()
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("CATSDOGS_LOG_LEVEL", "WARNING").upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        code = predict_command(arguments)
    except (ValueError, OSError) as error:
        if os.environ.get("CATSDOGS_DEBUG"):
            raise
        print(f"catsdogs {arguments.command}: error: {error}", file=sys.stderr)
        code = EXIT_ERROR
    return code


if __name__ == "__main__":
    sys.exit(main())
