"""Stage submission: the Kaggle submission CSV for the test images, from the best model.

The model with the lowest validation log loss (from the evaluate stage's
metrics) predicts P(dog) for each test image ``N.jpg`` (clipped to
[prediction.clip, 1 - prediction.clip]). The CSV is ``id,label`` with label =
P(dog), ids sorted numerically, as the competition expects.

Without a test set (the folder is absent or empty, e.g. the Microsoft mirror or
a synthetic source without test images) the stage says so and writes the header
alone. Test images are untrusted: each passes the split's checks first (accepted
formats, ``images.max_pixels`` before any decode, a full decode with Pillow and
TensorFlow). One that fails is skipped: it gets the uninformative P(dog) = 0.5
(Kaggle scores only complete submissions, and 0.5 costs the least log loss a
guess can), a warning names it and why, and a final warning gives how many and
which ids were skipped.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from catsdogs.core.io import METRICS_FILE, write_text
from catsdogs.core.labels import kaggle_test_id
from catsdogs.core.manifest import require_folders
from catsdogs.core.params import load_params
from catsdogs.data.datasets import list_images
from catsdogs.predict.metrics import best_model_in, temperature_in
from catsdogs.predict.predictor import ModelFiles, PredictionSettings, Predictor, load_predictor

logger = logging.getLogger("submission")

HEADER = "id,label"
UNREADABLE_PROBABILITY = 0.5
MAX_LISTED_IDS = 50  # skipped ids listed in the closing warning (each is also warned about on its own)


def list_test_images(directory: str | Path) -> list[tuple[int, Path]]:
    """The test set's (id, file) pairs sorted by id; empty when the folder is absent or empty."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    pairs = []
    for path in list_images(directory):
        identifier = kaggle_test_id(path.name)
        if identifier is None:
            logger.warning("%r: not a Kaggle test name (N.jpg), skipped", str(path))
            continue
        pairs.append((identifier, path))
    return sorted(pairs)


def choose_model(metrics_file: str | Path) -> str:
    """The best model by validation log loss in the evaluate stage's metrics."""
    return best_model_in(metrics_file, f"{metrics_file} not found (written by the evaluate stage: dvc repro)")


def format_submission(rows: list[tuple[int, float]]) -> str:
    """The CSV text: header, then ``id,label`` rows sorted numerically by id."""
    lines = [HEADER, *(f"{identifier},{probability:.6f}" for identifier, probability in sorted(rows))]
    return "\n".join(lines) + "\n"


def predict_test_set(images: list[tuple[int, Path]], predictor: Predictor) -> tuple[list[tuple[int, float]], list[int]]:
    """(id, P(dog)) for each test image, and the ids skipped (given 0.5)."""
    results = predictor.predict_files([path for _, path in images])
    rows, skipped = [], []
    for (identifier, _), result in zip(images, results):
        if result.error is not None:
            skipped.append(identifier)
            logger.warning("skipped %s: %s; submitting P(dog)=%.1f", result.path, result.error, UNREADABLE_PROBABILITY)
            rows.append((identifier, UNREADABLE_PROBABILITY))
        else:
            rows.append((identifier, result.probability))
    if skipped:
        logger.warning(
            "%d of %d test images skipped (P(dog)=%.1f submitted for them): ids %s%s",
            len(skipped), len(images), UNREADABLE_PROBABILITY, ", ".join(map(str, skipped[:MAX_LISTED_IDS])),
            f" and {len(skipped) - MAX_LISTED_IDS} more" if len(skipped) > MAX_LISTED_IDS else "",
        )
    return rows, skipped


def make_submission(
    test_dir: str | Path, evaluate_dir: str | Path, submission: str | Path, files: ModelFiles,
    settings: PredictionSettings, calibrate: bool,
) -> tuple[int, list[int]]:
    """Write the ``submission`` CSV for the images in ``test_dir`` with the best model by validation log loss
    (its temperature applied when ``calibrate``); return the number of rows and the skipped ids."""
    images = list_test_images(test_dir)
    if not images:
        logger.info("no test images in %s (the source has no test set): writing the header only", test_dir)
        write_text(submission, HEADER + "\n")
        return 0, []
    model_name = choose_model(Path(evaluate_dir) / METRICS_FILE)
    temperature = temperature_in(Path(evaluate_dir) / METRICS_FILE, model_name) if calibrate else 1.0
    logger.info("predicting %d test images with %s (best validation log loss; calibration temperature %.3f)",
                len(images), model_name, temperature)
    predictor = load_predictor(model_name, files, replace(settings, temperature=temperature))
    rows, skipped = predict_test_set(images, predictor)
    write_text(submission, format_submission(rows))
    return len(rows), skipped


def main() -> None:
    """Load params and write the submission CSV."""
    params = load_params()
    paths, common, prediction = params.paths, params.common, params.prediction
    require_folders(paths.raw_manifest, paths.raw_test)
    settings = PredictionSettings(common.image_size, common.batch_size, prediction.clip, prediction.tta,
                                  params.images.max_pixels)
    count, skipped = make_submission(
        paths.raw_test, paths.evaluate_reports, paths.submission, ModelFiles.of(params), settings, prediction.calibrate,
    )
    logger.info("wrote %s (%d rows, %d of them skipped images given P(dog)=%.1f)", paths.submission, count,
                len(skipped), UNREADABLE_PROBABILITY)
