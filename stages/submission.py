"""Stage submission: the Kaggle submission CSV for the test images, from the best model.

The model with the lowest validation log loss (from the evaluate stage's
metrics) predicts P(dog) for each test image ``N.jpg`` (clipped to
[evaluate.clip, 1 - evaluate.clip]). The CSV is ``id,label`` with label =
P(dog), ids sorted numerically, as the competition expects.

Without a test set (the folder is absent or empty, e.g. the Microsoft mirror or
a synthetic source without test images) the stage says so and writes the header
alone. A test image that cannot be read gets the uninformative 0.5 (Kaggle
needs a row for every id) and a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path

from stages.lib.data import list_images
from stages.lib.io import METRICS_FILE, write_text
from stages.lib.metrics import best_model_in
from stages.lib.params import load_params
from stages.lib.predict import load_prediction_model, model_image_size, predict_files
from stages.lib.runner import run_stage

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


def predict_test_set(
    images: list[tuple[int, Path]], model_name: str, model_files: dict[str, Path], *, image_size: int,
    batch_size: int, clip: float, tta: bool, weights: str, preprocessing: str, seed: int,
) -> list[tuple[int, float]]:
    """(id, P(dog)) for each test image with the named model (or the ensemble); unreadable images get 0.5."""
    model = load_prediction_model(
        model_name, model_files, tta=tta, image_size=image_size, weights=weights, preprocessing=preprocessing,
        seed=seed,
    )
    results = predict_files(
        model, [path for _, path in images], model_image_size(model, image_size), batch_size, clip
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


def make_submission(
    test_dir: str | Path, evaluate_dir: str | Path, model_files: dict[str, Path], submission: str | Path, *,
    image_size: int, batch_size: int, clip: float, tta: bool, weights: str, preprocessing: str, seed: int,
) -> int:
    """Write the ``submission`` CSV for the images in ``test_dir``; returns the number of rows."""
    images = list_test_images(test_dir)
    if not images:
        logger.info("no test images in %s (the source has no test set): writing the header only", test_dir)
        write_text(submission, HEADER + "\n")
        return 0
    model_name = choose_model(Path(evaluate_dir) / METRICS_FILE)
    logger.info("predicting %d test images with %s (best validation log loss)", len(images), model_name)
    rows = predict_test_set(
        images, model_name, model_files, image_size=image_size, batch_size=batch_size, clip=clip, tta=tta,
        weights=weights, preprocessing=preprocessing, seed=seed,
    )
    write_text(submission, format_submission(rows))
    return len(rows)


def main() -> None:
    """Load params and write the submission CSV."""
    params = load_params()
    paths, common, features = params.paths, params.common, params.extract_features
    count = make_submission(
        paths.raw_test, paths.evaluate_reports, paths.model_files(), paths.submission,
        image_size=common.image_size, batch_size=common.batch_size, clip=params.evaluate.clip, tta=params.evaluate.tta,
        weights=features.weights, preprocessing=features.preprocessing, seed=common.seed,
    )
    logger.info("wrote %s (%d rows)", paths.submission, count)


if __name__ == "__main__":
    run_stage("submission", main)
