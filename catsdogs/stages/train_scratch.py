"""Stage train_scratch: a CNN trained from scratch on the split's images, by the recipe
``train_scratch.recipe`` names (:mod:`catsdogs.models.recipes`: the tutorial's or the modern one).

The recipe gives the network, its optimizer and schedule, its augmentation (applied to
training batches in tf.data, never inside the model) and its stopping rule; this stage
checks the photos, trains, and saves the best model with the training reports every
training stage writes (:mod:`catsdogs.train.training`).

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

from catsdogs.core.manifest import require_folders
from catsdogs.core.params import CommonParams, RuntimeParams, TrainScratchParams, load_params
from catsdogs.core.progress import training_estimate_callback
from catsdogs.core.seeding import seed_everything
from catsdogs.data.augmentation import batch_augmentation
from catsdogs.data.datasets import (
    check_readable,
    list_labelled_images,
    log_cache_size,
    make_image_dataset,
    unreadable_error,
    unreadable_images,
)
from catsdogs.models.precision import set_mixed_precision
from catsdogs.models.recipes import Recipe, Stopping, load_recipe
from catsdogs.train import training
from catsdogs.train.distribution import select_strategy
from catsdogs.train.live import discards_progress_on_failure, live_callback
from catsdogs.train.resume import fit_resumable, resume_backup
from catsdogs.train.training import TrainingFiles

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


def fit(model, train_dataset, validation_dataset, stopping: Stopping, backup=None, live=None) -> tuple[dict, int]:
    """Train with the recipe's early stopping on val_loss, resuming from ``backup`` (a
    :class:`catsdogs.train.resume.Backup`, or None) where it holds finished epochs, each epoch logged by
    ``live`` (:func:`catsdogs.train.live.live_callback`, or None); return the history of every epoch and
    the number of epochs the run resumed after (0: none)."""
    import keras

    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=stopping.patience, start_from_epoch=stopping.start_from_epoch,
        restore_best_weights=stopping.restore_best_weights, verbose=1,
    )
    callbacks = [training_estimate_callback(logger, "training", stopping.epochs, None)]
    return fit_resumable(
        model, backup, early_stopping, epochs=stopping.epochs, callbacks=callbacks + ([live] if live else []),
        x=train_dataset, validation_data=validation_dataset, verbose=training.fit_verbosity(),
        shuffle=False,  # the tf.data pipeline shuffles (seeded); fit cannot shuffle a dataset
    )


@discards_progress_on_failure
def train_scratch(
    files: TrainingFiles, common: CommonParams, runtime: RuntimeParams, scratch: TrainScratchParams, recipe: Recipe,
) -> dict:
    """Check the inputs, train ``recipe``'s CNN (``scratch``: its cache and strategy), save it and its
    reports; return the metrics.

    With ``files.backups`` (a folder outside the outputs) a killed run resumes from its last finished
    epoch (:mod:`catsdogs.train.resume`), keyed by the configs and the data.
    """
    recipe.check(common.image_size)
    stopping = recipe.stopping()
    train = list_labelled_images(files.train)  # raises for a missing or empty class folder
    validation = list_labelled_images(files.validation)
    logger.info("images: %d train, %d validation", len(train[0]), len(validation[0]))

    import keras  # noqa: F401  (imported before seeding, so seed_everything seeds Keras too)
    import tensorflow as tf

    # The strategy comes before any TensorFlow op: multi-worker collectives must be set up first.
    distribution = select_strategy(scratch.strategy)
    check_readable(*train, common.image_size, CHECKED_PER_CLASS)
    check_readable(*validation, common.image_size, CHECKED_PER_CLASS)

    seed_everything(common.seed, runtime.deterministic)
    policy = set_mixed_precision(runtime.mixed_precision)
    augment = batch_augmentation(**recipe.augmentation.model_dump(), seed=common.seed)
    cache = scratch.cache == "memory"
    with distribution.scope():
        model = recipe.build(common.image_size, math.ceil(len(train[0]) / common.batch_size))
    logger.info("model: %s recipe, %d parameters, dtype policy %s", recipe.name, model.count_params(), policy)

    # Each epoch's figures in files.reports/live/ as it ends; only the chief worker writes (every process
    # when not multi-worker).
    live = live_callback(files.reports) if distribution.extended.should_checkpoint else None
    started = time.perf_counter()
    backup, resumed_from_epoch = None, 0
    try:
        if isinstance(distribution, tf.distribute.MultiWorkerMirroredStrategy):
            from catsdogs.train.multiworker import fit_multiworker

            history = fit_multiworker(model, distribution, augment, train, validation, common, cache, stopping,
                                      live=live)
        else:
            datasets = make_datasets(train, validation, common.image_size, common.batch_size, common.seed, cache,
                                     augment)
            settings = training.settings_key(common, runtime, scratch, recipe=recipe.config)
            backup = resume_backup(files.backups, "train_scratch", settings, [files.train, files.validation])
            history, resumed_from_epoch = fit(model, *datasets, stopping, backup=backup, live=live)
    except tf.errors.InvalidArgumentError as error:
        broken = unreadable_images(train[0] + validation[0], common.image_size)
        if not broken:
            raise
        raise unreadable_error(broken) from error
    seconds = time.perf_counter() - started

    summary = training.summarize_run(history, seconds, len(train[0]), validation[1],
                                     watched_from=stopping.start_from_epoch)
    summary.update(
        parameters=model.count_params(),
        replicas=distribution.num_replicas_in_sync,
        dtype_policy=policy,
        recipe=recipe.name,
        resumed_from_epoch=resumed_from_epoch,
    )
    training.report_chance(
        logger, "train_scratch", summary, common.fail_at_chance,
        f"early stopping before the model left its initial plateau (raise recipes.{recipe.name}.start_from_epoch "
        f"or patience), a learning rate that is too high or too low (recipes.{recipe.name}.learning_rate)",
    )
    logger.info(
        "validation accuracy %.4f (best epoch %d of %d), %.1f training images/s",
        summary["best_val_accuracy"], summary["best_epoch"], summary["epochs_run"], summary["images_per_second"],
    )
    if distribution.extended.should_checkpoint:  # only the chief worker writes (every process when not multi-worker)
        training.save_outputs(model, files, history, summary, backup)  # multi-worker runs keep no backup
        logger.info("wrote %s and %s", files.model, files.reports)
    return summary


def main() -> None:
    """Load params.yaml and run the stage with the recipe train_scratch.recipe names."""
    params = load_params()
    paths = params.paths
    require_folders(paths.split_manifest, paths.train, paths.validation)
    scratch = params.train_scratch
    recipe = load_recipe(scratch.recipe, params.recipes)
    train_scratch(TrainingFiles.of(paths, "scratch"), params.common, params.runtime, scratch, recipe)
