"""Stage train_top: the dense classifier on VGG16's bottleneck features (the tutorial's top model).

Reads features/ (checked: rows, labels, file lists and meta.json must agree);
writes models/top.keras and reports/top/{metrics.json, history.csv, live/}.
Reads only the train_top params (and the seed), so changing them never reruns
the feature extraction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import keras
from keras import layers

from stages.lib import features as feature_files
from stages.lib.cli import run_stage
from stages.lib.params import TrainTopParams, load_params
from stages.lib.seeding import seed_everything
from stages.lib.training import fit_verbosity, save_model, summarize_history, write_training_reports

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


def train_top_classifier(loaded: dict, section: TrainTopParams, seed: int):
    """Compile and fit the top classifier (RMSprop, binary cross-entropy); returns (model, history)."""
    train_features, train_labels = loaded["train"]
    validation_features, validation_labels = loaded["validation"]
    keras.utils.set_random_seed(seed)
    model = build_top_classifier(train_features.shape[1:], section.units, section.dropouts)
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=section.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(
        train_features,
        train_labels.astype("float32"),
        validation_data=(validation_features, validation_labels.astype("float32")),
        epochs=section.epochs,
        batch_size=section.batch_size,
        shuffle=True,
        verbose=fit_verbosity(),
    )
    return model, history.history


def main() -> None:
    """Load params and features, train the top classifier, save it and its reports."""
    params = load_params()
    section = params.train_top
    seed_everything(params.common.seed, params.common.deterministic)
    loaded, meta = load_features(params.paths.features)
    logger.info(
        "features %s: %d train, %d validation (%s preprocessing, %s weights)",
        tuple(meta["feature_shape"]), len(loaded["train"][1]), len(loaded["validation"][1]),
        meta.get("preprocessing"), meta.get("weights", {}).get("source"),
    )
    started = time.perf_counter()
    model, history = train_top_classifier(loaded, section, params.common.seed)
    seconds = time.perf_counter() - started
    save_model(model, params.paths.top_model)
    summary = {
        **summarize_history(history),
        "train_seconds": round(seconds, 2),
        "train_count": len(loaded["train"][1]),
        "validation_count": len(loaded["validation"][1]),
    }
    write_training_reports(params.paths.top_reports, history, summary)
    logger.info("top classifier: final val_accuracy %.4f in %.1f s", summary["final_val_accuracy"], seconds)


if __name__ == "__main__":
    run_stage("train_top", main)
