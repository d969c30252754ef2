"""Stage submission: the Kaggle submission CSV for the test images, from the best model.

Reads paths.raw_test (``N.jpg``) and the evaluate stage's metrics; the model
with the lowest validation log loss predicts P(dog) (clipped to
[evaluate.clip, 1 - evaluate.clip]). Writes paths.submission: ``id,label``
with label = P(dog), ids sorted numerically, as the competition expects.

Without a test set (the folder is absent or empty, e.g. the Microsoft mirror or
a synthetic source without test images) the stage says so and writes the header
alone. A test image that cannot be read gets the uninformative 0.5 (Kaggle
needs a row for every id) and a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path

from stages.lib.cli import run_stage
from stages.lib.data import list_images
from stages.lib.io import write_text
from stages.lib.metrics import best_model_in
from stages.lib.params import Params, load_params
from stages.lib.predict import load_image_model, model_image_size, predict_files

logger = logging.getLogger("submission")

HEADER = "id,label"
UNREADABLE_PROBABILITY = 0.5


def list_test_images(directory: str | Path) -> list[tuple[int, Path]]:
    """The test set's (id, file) pairs sorted by id; empty when the folder is absent or empty."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    pairs = []
    for path in list_images(directory):
        if not path.stem.isdigit():
            logger.warning("%s: not a Kaggle test name (N.jpg), skipped", path)
            continue
        pairs.append((int(path.stem), path))
    return sorted(pairs)


def choose_model(metrics_file: str | Path) -> str:
    """The best model by validation log loss in the evaluate stage's metrics."""
    return best_model_in(metrics_file, f"{metrics_file} not found (written by the evaluate stage: dvc repro)")


def format_submission(rows: list[tuple[int, float]]) -> str:
    """The CSV text: header, then ``id,label`` rows sorted numerically by id."""
    lines = [HEADER, *(f"{identifier},{probability:.6f}" for identifier, probability in sorted(rows))]
    return "\n".join(lines) + "\n"


def predict_test_set(params: Params, images: list[tuple[int, Path]], model_name: str) -> list[tuple[int, float]]:
    """(id, P(dog)) for each test image with the named model; unreadable images get 0.5."""
    model = load_image_model(model_name, params)
    image_size = model_image_size(model, params.common.image_size)
    results = predict_files(
        model, [path for _, path in images], image_size, params.common.batch_size, params.evaluate.clip
    )
    rows = []
    failed = 0
    for (identifier, _), result in zip(images, results):
        if result.error is not None:
            failed += 1
            logger.warning("%s: %s; submitting P(dog)=%.1f", result.path, result.error, UNREADABLE_PROBABILITY)
            rows.append((identifier, UNREADABLE_PROBABILITY))
        else:
            rows.append((identifier, result.probability))
    if failed:
        logger.warning("%d of %d test images could not be read", failed, len(images))
    return rows


def make_submission(params: Params) -> int:
    """Write paths.submission for paths.raw_test; returns the number of rows."""
    paths = params.paths
    images = list_test_images(paths.raw_test)
    if not images:
        logger.info("no test images in %s (the source has no test set): writing the header only", paths.raw_test)
        write_text(paths.submission, HEADER + "\n")
        return 0
    model_name = choose_model(Path(paths.evaluate_reports) / "metrics.json")
    logger.info("predicting %d test images with %s (best validation log loss)", len(images), model_name)
    rows = predict_test_set(params, images, model_name)
    write_text(paths.submission, format_submission(rows))
    return len(rows)


def main() -> None:
    """Load params and write the submission CSV."""
    params = load_params()
    count = make_submission(params)
    logger.info("wrote %s (%d rows)", params.paths.submission, count)


if __name__ == "__main__":
    run_stage("submission", main)
