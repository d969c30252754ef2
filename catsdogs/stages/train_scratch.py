"""Stage train_scratch: the tutorial's small CNN, trained from scratch on the split's images.

Trains with SGD + time decay and the tutorial's augmentation (applied to
training batches in tf.data, never inside the model), stops early on validation
loss, and saves the best model with the training reports every training stage
writes (:mod:`catsdogs.train.training`).

Bad input stops before any training with a ValueError: an empty or missing class
folder (a single class), an image_size too small for the conv/pool stack, or an
unreadable image. Images of any size are accepted: the pipeline resizes every
image to common.image_size, so "the wrong size" means a size the architecture
cannot take. A few files per class are decoded up front; should another file fail
to decode during training, every file is checked and the broken ones are named.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

from catsdogs.train import training
from catsdogs.data.augmentation import batch_augmentation
from catsdogs.data.datasets import (
    check_readable,
    list_labelled_images,
    log_cache_size,
    make_image_dataset,
    unreadable_error,
    unreadable_images,
)
from catsdogs.train.distribution import select_strategy
from catsdogs.models.files import save_model
from catsdogs.core.params import load_params
from catsdogs.models.precision import set_mixed_precision
from catsdogs.core.progress import training_estimate_callback
from catsdogs.train.resume import fit_resumable, resume_backup
from catsdogs.models.scratch import check_image_size, compile_model
from catsdogs.core.seeding import seed_everything

logger = logging.getLogger("train_scratch")

CHECKED_PER_CLASS = 8  # files per class decoded before training (the split stage checked them all)


def make_datasets(train, validation, image_size: int, batch_size: int, seed: int, cache: bool, augment):
    """The training (shuffled, augmented) and validation tf.data pipelines."""
    if cache:
        log_cache_size(logger, len(train[0]) + len(validation[0]), image_size)
    train_dataset = make_image_dataset(
        *train, image_size, batch_size, shuffle=True, seed=seed, cache=cache, augment=augment,
    )
    validation_dataset = make_image_dataset(*validation, image_size, batch_size, cache=cache)
    return train_dataset, validation_dataset


def fit(
    model, train_dataset, validation_dataset, epochs: int, patience: int, start_from_epoch: int,
    restore_best_weights: bool, backup=None,
) -> tuple[dict, int]:
    """Train with early stopping on val_loss (watched from ``start_from_epoch``), resuming from ``backup``
    (a :class:`catsdogs.train.resume.Backup`, or None) where it holds finished epochs; return the history of
    every epoch and the number of epochs the run resumed after (0: none)."""
    import keras

    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=patience, start_from_epoch=start_from_epoch,
        restore_best_weights=restore_best_weights, verbose=1,
    )
    return fit_resumable(
        model, backup, early_stopping, epochs=epochs,
        callbacks=[training_estimate_callback(logger, "training", epochs, None)],
        x=train_dataset, validation_data=validation_dataset, verbose=training.fit_verbosity(),
        shuffle=False,  # the tf.data pipeline shuffles (seeded); fit cannot shuffle a dataset
    )


# train_scratch's arguments that do not change what it computes (the rest key a resume backup).
_NOT_SETTINGS = ("train_dir", "validation_dir", "model_path", "reports_dir", "backups")


def train_scratch(
    train_dir: str | Path,
    validation_dir: str | Path,
    model_path: str | Path,
    reports_dir: str | Path,
    *,
    image_size: int,
    batch_size: int,
    seed: int,
    deterministic: bool,
    fail_at_chance: bool,
    recipe: str,
    epochs: int,
    learning_rate: float,
    momentum: float,
    decay: float | None,
    patience: int,
    start_from_epoch: int,
    restore_best_weights: bool,
    filters: list[int],
    dense_units: int,
    conv_dropout: float,
    dense_dropout: float,
    augmentation: dict,
    modern: dict,
    cache: str,
    strategy: str,
    mixed_precision: bool | str,
    backups: str | Path | None = None,
) -> dict:
    """Check the inputs, train the recipe's CNN, save it and its reports; return the metrics.

    ``recipe`` is ``tutorial`` (the keys of this section, early stopping on val_loss
    from ``start_from_epoch``) or ``modern`` (``modern``'s keys: a fixed cosine
    schedule of ``modern["epochs"]``, keeping the epoch with the best val_loss). With ``backups`` (a
    folder outside the outputs) a killed run resumes from its last finished epoch (:mod:`catsdogs.train.resume`).
    """
    settings = {key: value for key, value in locals().items() if key not in _NOT_SETTINGS}
    if recipe == "tutorial":
        check_image_size(image_size, len(filters))
        stopping = {"epochs": epochs, "patience": patience, "start_from_epoch": start_from_epoch,
                    "restore_best_weights": restore_best_weights}
    else:
        augmentation = modern["augmentation"]
        stopping = {"epochs": modern["epochs"], "patience": modern["epochs"], "start_from_epoch": 0,
                    "restore_best_weights": True}
    train = list_labelled_images(train_dir)  # raises for a missing or empty class folder
    validation = list_labelled_images(validation_dir)
    logger.info("images: %d train, %d validation", len(train[0]), len(validation[0]))

    import keras  # noqa: F401  (imported before seeding, so seed_everything seeds Keras too)
    import tensorflow as tf

    # The strategy comes before any TensorFlow op: multi-worker collectives must be set up first.
    distribution = select_strategy(strategy)
    check_readable(*train, image_size, CHECKED_PER_CLASS)
    check_readable(*validation, image_size, CHECKED_PER_CLASS)

    seed_everything(seed, deterministic)
    policy = set_mixed_precision(mixed_precision)
    augment = batch_augmentation(**augmentation, seed=seed)
    tutorial = {"filters": filters, "dense_units": dense_units, "conv_dropout": conv_dropout,
                "dense_dropout": dense_dropout, "learning_rate": learning_rate, "momentum": momentum, "decay": decay,
                "epochs": epochs}
    with distribution.scope():
        model = compile_model(recipe, image_size, math.ceil(len(train[0]) / batch_size), tutorial, modern)
    logger.info("model: %s recipe, %d parameters, dtype policy %s", recipe, model.count_params(), policy)

    started = time.perf_counter()
    backup, resumed_from_epoch = None, 0
    try:
        if isinstance(distribution, tf.distribute.MultiWorkerMirroredStrategy):
            from catsdogs.train.multiworker import fit_multiworker

            history = fit_multiworker(
                model, distribution, augment, train, validation, image_size=image_size, batch_size=batch_size,
                seed=seed, cache=cache == "memory", **stopping,
            )
        else:
            datasets = make_datasets(train, validation, image_size, batch_size, seed, cache == "memory", augment)
            backup = resume_backup(backups, "train_scratch", settings, [train_dir, validation_dir])
            history, resumed_from_epoch = fit(model, *datasets, **stopping, backup=backup)
    except tf.errors.InvalidArgumentError as error:
        broken = unreadable_images(train[0] + validation[0], image_size)
        if not broken:
            raise
        raise unreadable_error(broken) from error
    seconds = time.perf_counter() - started

    summary = training.summarize_history(history, watched_from=stopping["start_from_epoch"])
    summary.update(
        training.timing_summary(seconds, len(train[0]), summary["epochs_run"]),
        train_count=len(train[0]),
        validation_count=len(validation[0]),
        parameters=model.count_params(),
        replicas=distribution.num_replicas_in_sync,
        dtype_policy=policy,
        recipe=recipe,
        resumed_from_epoch=resumed_from_epoch,
        **training.chance_check(summary["best_val_accuracy"], validation[1]),
    )
    training.report_chance(
        logger, "train_scratch", summary, len(validation[0]), fail_at_chance,
        "early stopping before the model left its initial plateau (raise train_scratch.start_from_epoch or "
        "patience), a learning rate that is too high or too low (train_scratch.learning_rate)",
    )
    logger.info(
        "validation accuracy %.4f (best epoch %d of %d), %.1f training images/s",
        summary["best_val_accuracy"], summary["best_epoch"], summary["epochs_run"], summary["images_per_second"],
    )
    if distribution.extended.should_checkpoint:  # only the chief worker writes (every process when not multi-worker)
        save_model(model, model_path)  # first: a failed save leaves no fresh reports behind
        training.write_training_reports(reports_dir, history, summary)
        logger.info("wrote %s and %s", model_path, reports_dir)
    if backup is not None:
        backup.remove()
    return summary


def main() -> None:
    """Load params.yaml and run the stage."""
    params = load_params()
    paths = params.paths
    train_scratch(
        paths.train, paths.validation, paths.scratch_model, paths.scratch_reports,
        **params.common.model_dump(), **params.train_scratch.model_dump(), backups=paths.backups,
    )
