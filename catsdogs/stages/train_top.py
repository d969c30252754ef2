"""Stage train_top: the dense classifier on VGG16's bottleneck features (the tutorial's top model).

Reads the features folder (checked: rows, labels, file lists and meta.json must
agree) and trains on it alone, so changing the top classifier's params never
reruns the feature extraction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import keras
from keras import layers

from catsdogs.data import features as feature_files
from catsdogs.train import training
from catsdogs.models.files import save_model
from catsdogs.core.params import load_params
from catsdogs.core.progress import training_estimate_callback
from catsdogs.core.seeding import seed_everything

logger = logging.getLogger("train_top")


def build_top_classifier(feature_shape: Sequence[int], units: Sequence[int], dropouts: Sequence[float]):
    """Flatten -> (Dense ReLU -> Dropout) per entry of ``units`` -> Dense 1 sigmoid: P(dog)."""
    if len(units) != len(dropouts):
        raise ValueError(f"one dropout per dense layer: got {len(units)} units and {len(dropouts)} dropouts")
    inputs = keras.Input(tuple(feature_shape), name="features")
    hidden = layers.Flatten(name="flatten")(inputs)
    for index, (width, rate) in enumerate(zip(units, dropouts), start=1):
        hidden = layers.Dense(width, activation="relu", name=f"dense_{index}")(hidden)
        hidden = layers.Dropout(rate, name=f"dropout_{index}")(hidden)
    outputs = layers.Dense(1, activation="sigmoid", name="p_dog")(hidden)
    return keras.Model(inputs, outputs, name="top_classifier")


def load_features(directory) -> tuple[dict, dict]:
    """Both splits' (features, labels), checked against each other and meta.json; and the meta."""
    meta = feature_files.read_meta(directory)
    loaded = {split: feature_files.load_split(directory, split) for split in feature_files.SPLITS}
    feature_files.check_meta(meta, directory, loaded)
    return loaded, meta


def train_top_classifier(
    loaded: dict, *, epochs: int, batch_size: int, learning_rate: float, units: Sequence[int],
    dropouts: Sequence[float], seed: int,
):
    """Compile and fit the top classifier (RMSprop, binary cross-entropy); returns (model, history)."""
    train_features, train_labels = loaded["train"]
    validation_features, validation_labels = loaded["validation"]
    keras.utils.set_random_seed(seed)
    model = build_top_classifier(train_features.shape[1:], units, dropouts)
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(
        train_features,
        train_labels.astype("float32"),
        validation_data=(validation_features, validation_labels.astype("float32")),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        callbacks=[training_estimate_callback(logger, "training", epochs, None)],
        verbose=training.fit_verbosity(),
    )
    return model, history.history


def train_top(
    features_dir: str | Path, model_path: str | Path, reports_dir: str | Path, *, seed: int, deterministic: bool,
    fail_at_chance: bool, epochs: int, batch_size: int, learning_rate: float, units: Sequence[int], dropouts: Sequence[float],
) -> dict:
    """Load and check the features, train the top classifier, save it and its reports; return the metrics."""
    seed_everything(seed, deterministic)
    loaded, meta = load_features(features_dir)
    logger.info(
        "features %s: %d train, %d validation (%s preprocessing, %s weights)",
        tuple(meta["feature_shape"]), len(loaded["train"][1]), len(loaded["validation"][1]),
        meta.get("preprocessing"), meta.get("weights", {}).get("source"),
    )
    started = time.perf_counter()
    model, history = train_top_classifier(
        loaded, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, units=units, dropouts=dropouts,
        seed=seed,
    )
    seconds = time.perf_counter() - started
    summary = training.summarize_history(history)
    summary |= training.timing_summary(seconds, len(loaded["train"][1]), summary["epochs_run"])
    summary |= {"train_count": len(loaded["train"][1]), "validation_count": len(loaded["validation"][1])}
    summary |= training.chance_check(summary["best_val_accuracy"], loaded["validation"][1])
    training.report_chance(
        logger, "train_top", summary, len(loaded["validation"][1]), fail_at_chance,
        "VGG16 weights that are not ImageNet's (extract_features.weights: none gives random features), "
        "a learning rate that is too high (train_top.learning_rate)",
    )
    save_model(model, model_path)
    training.write_training_reports(reports_dir, history, summary)
    logger.info("top classifier: final val_accuracy %.4f in %.1f s", summary["final_val_accuracy"], seconds)
    return summary


def main() -> None:
    """Load params and run the stage on paths.features."""
    params = load_params()
    paths = params.paths
    train_top(
        paths.features, paths.top_model, paths.top_reports, seed=params.common.seed,
        deterministic=params.common.deterministic, fail_at_chance=params.common.fail_at_chance,
        **params.train_top.model_dump(),
    )
