"""Stage train_top: the dense classifier on VGG16's bottleneck features (the tutorial's top model).

Reads the features folder (checked: rows, labels, file lists and meta.json must
agree) and trains on it alone, so changing the top classifier's params never
reruns the feature extraction.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import keras

from catsdogs.core.params import TrainTopParams, load_params
from catsdogs.core.progress import training_estimate_callback
from catsdogs.core.seeding import seed_everything
from catsdogs.data import features as feature_files
from catsdogs.models.top import build_top_classifier
from catsdogs.train import training
from catsdogs.train.live import discards_progress_on_failure, live_callback
from catsdogs.train.training import TrainingFiles

logger = logging.getLogger("train_top")


def load_features(directory) -> tuple[dict, dict]:
    """Both splits' (features, labels), checked against each other and meta.json; and the meta."""
    meta = feature_files.read_meta(directory)
    loaded = {split: feature_files.load_split(directory, split) for split in feature_files.SPLITS}
    feature_files.check_meta(meta, directory, loaded)
    return loaded, meta


def train_top_classifier(loaded: dict, config: TrainTopParams, seed: int, live=None):
    """Compile and fit the top classifier (RMSprop, binary cross-entropy), each epoch logged by ``live``
    (:func:`catsdogs.train.live.live_callback`, or None); returns (model, history)."""
    train_features, train_labels = loaded["train"]
    validation_features, validation_labels = loaded["validation"]
    keras.utils.set_random_seed(seed)
    model = build_top_classifier(train_features.shape[1:], config.units, config.dropouts)
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=config.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    callbacks = [training_estimate_callback(logger, "training", config.epochs, None)]
    history = model.fit(
        train_features,
        train_labels.astype("float32"),
        validation_data=(validation_features, validation_labels.astype("float32")),
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        callbacks=callbacks + ([live] if live else []),
        verbose=training.fit_verbosity(),
    )
    return model, history.history


@discards_progress_on_failure
def train_top(
    features_dir: str | Path, files: TrainingFiles, config: TrainTopParams, *, seed: int, deterministic: bool,
    fail_at_chance: bool,
) -> dict:
    """Load and check the features, train the top classifier, save it and its reports; return the metrics.
    ``files``: the model and reports (train, validation and backups are not used: features stand for them)."""
    seed_everything(seed, deterministic)
    loaded, meta = load_features(features_dir)
    logger.info(
        "features %s: %d train, %d validation (%s preprocessing, %s weights)",
        tuple(meta["feature_shape"]), len(loaded["train"][1]), len(loaded["validation"][1]),
        meta.get("preprocessing"), meta.get("weights", {}).get("source"),
    )
    live = live_callback(files.reports)  # each epoch's figures in files.reports/live/ as it ends
    started = time.perf_counter()
    model, history = train_top_classifier(loaded, config, seed, live=live)
    seconds = time.perf_counter() - started
    summary = training.summarize_run(history, seconds, len(loaded["train"][1]), loaded["validation"][1])
    training.report_chance(
        logger, "train_top", summary, fail_at_chance,
        "VGG16 weights that are not ImageNet's (vgg16.weights: none gives random features), "
        "a learning rate that is too high (train_top.learning_rate)",
    )
    training.save_outputs(model, files, history, summary)
    logger.info("top classifier: final val_accuracy %.4f in %.1f s", summary["final_val_accuracy"], seconds)
    return summary


def main() -> None:
    """Load params and run the stage on paths.features."""
    params = load_params()
    paths = params.paths
    train_top(paths.features, TrainingFiles.of(paths, "top", resumable=False), params.train_top,
              seed=params.common.seed, deterministic=params.runtime.deterministic,
              fail_at_chance=params.common.fail_at_chance)
