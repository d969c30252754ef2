"""Stage finetune (beyond the tutorial): fine-tune VGG16's last block together with the top classifier.

The model takes raw RGB [0, 255] pixels: preprocessing layer -> VGG16 base (the
weights extract_features used) -> the trained top classifier. Layers below
``finetune.trainable_from`` stay frozen; SGD at a low learning rate with the
training augmentation; early stopping on val_loss restores the best epoch.

``finetune.epochs: 0`` skips the training: the stage still writes the stacked
model (exactly the bottleneck model, applied to images) so later stages treat
it like any image model, and its metrics say ``"skipped": true``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import keras

from catsdogs.core.manifest import require_folders
from catsdogs.core.params import CommonParams, FinetuneParams, RuntimeParams, load_params
from catsdogs.core.progress import prediction_estimate_callback, training_estimate_callback
from catsdogs.core.seeding import seed_everything
from catsdogs.data.augmentation import batch_augmentation
from catsdogs.data.datasets import list_labelled_images, make_image_dataset
from catsdogs.models import vgg
from catsdogs.models.files import load_model
from catsdogs.models.precision import set_mixed_precision
from catsdogs.train import training
from catsdogs.train.live import discards_progress_on_failure, live_callback
from catsdogs.train.resume import fit_resumable, resume_backup
from catsdogs.train.training import TrainingFiles

logger = logging.getLogger("finetune")


def freeze_below(base, trainable_from: str) -> None:
    """Make ``base``'s layers from ``trainable_from`` on trainable and every layer before it frozen."""
    names = [layer.name for layer in base.layers]
    if trainable_from not in names:
        choices = ", ".join(name for name in names if "conv" in name)
        raise ValueError(f"finetune.trainable_from {trainable_from!r} is not a VGG16 layer; choose one of: {choices}")
    start = names.index(trainable_from)
    base.trainable = True
    for index, layer in enumerate(base.layers):
        layer.trainable = index >= start


def fit_finetune(
    model, train, validation, common: CommonParams, config: FinetuneParams, backup=None, live=None,
) -> tuple[dict, dict]:
    """Compile (SGD with momentum) and fit with early stopping, resuming from ``backup`` (see
    :mod:`catsdogs.train.resume`), each epoch logged by ``live`` (:func:`catsdogs.train.live.live_callback`,
    or None); returns (history, extra summary figures)."""
    augment = batch_augmentation(**config.augmentation.model_dump(), seed=common.seed)
    train_data = make_image_dataset(*train, common.image_size, common.batch_size, shuffle=True, seed=common.seed,
                                    augment=augment)
    validation_data = make_image_dataset(*validation, common.image_size, common.batch_size)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=config.learning_rate, momentum=config.momentum),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    # Where fine-tuning starts: the bottleneck model's own validation figures (a whole pass of VGG16 over the
    # validation images: minutes on a CPU at Kaggle's 5,000, so it is announced).
    logger.info("starting point: scoring the model before fine-tuning on %d validation images", len(validation[0]))
    estimate = prediction_estimate_callback(logger, "starting point")
    initial = model.evaluate(validation_data, return_dict=True, verbose=training.fit_verbosity(), callbacks=[estimate])
    logger.info("starting point: val_loss %.4f, val_accuracy %.4f", initial["loss"], initial["accuracy"])
    stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=config.patience, restore_best_weights=True, verbose=1)
    callbacks = [training_estimate_callback(logger, "fine-tuning", config.epochs, None)]
    history, resumed_from_epoch = fit_resumable(
        model, backup, stopping, epochs=config.epochs, callbacks=callbacks + ([live] if live else []),
        x=train_data, validation_data=validation_data, verbose=training.fit_verbosity(),
        shuffle=False,  # the tf.data pipeline shuffles (seeded); fit cannot shuffle a dataset
    )
    extra = {"initial_val_loss": float(initial["loss"]), "initial_val_accuracy": float(initial["accuracy"]),
             "resumed_from_epoch": resumed_from_epoch}
    return history, extra


@discards_progress_on_failure
def finetune(
    files: TrainingFiles, top_model: str | Path, weights_file: str | Path, preprocessing: str, common: CommonParams,
    runtime: RuntimeParams, config: FinetuneParams,
) -> dict:
    """Stack VGG16 and the top classifier, fine-tune (or skip when ``config.epochs`` is 0), save model and
    reports. With ``files.backups`` (a folder outside the outputs) a killed run resumes from its last
    finished epoch, keyed by the configs and the data."""
    seed_everything(common.seed, runtime.deterministic)
    train = list_labelled_images(files.train)
    validation = list_labelled_images(files.validation)
    policy = set_mixed_precision(runtime.mixed_precision)
    top = load_model(top_model)
    base = vgg.build_vgg16_base(common.image_size, weights_file)  # the weights the features came from
    seed_everything(common.seed, runtime.deterministic)  # same shuffling/augmentation whatever the weights
    freeze_below(base, config.trainable_from)
    model = vgg.vgg16_image_model(base, preprocessing, common.image_size, top=top, name="vgg16_finetune")
    trainable = int(sum(keras.ops.size(weight) for weight in model.trainable_weights))
    summary = {
        "skipped": config.epochs == 0,
        "trainable_from": config.trainable_from,
        "trainable_parameters": trainable,
        "dtype_policy": policy,
    }
    history: dict = {}
    backup = None
    if config.epochs == 0:
        logger.info("finetune.epochs is 0: writing the stacked VGG16 + top model without training it")
        summary |= {"epochs_run": 0, "resumed_from_epoch": 0, "train_count": len(train[0]),
                    "validation_count": len(validation[0])}
    else:
        logger.info("fine-tuning from %s (%d trainable parameters), up to %d epochs", config.trainable_from,
                    trainable, config.epochs)
        live = live_callback(files.reports)  # each epoch's figures in files.reports/live/ as it ends
        started = time.perf_counter()
        settings = training.settings_key(common, runtime, config, preprocessing=preprocessing)
        backup = resume_backup(files.backups, "finetune", settings, [files.train, files.validation, top_model,
                                                                      weights_file])
        history, extra = fit_finetune(model, train, validation, common, config, backup=backup, live=live)
        seconds = time.perf_counter() - started
        summary |= training.summarize_run(history, seconds, len(train[0]), validation[1]) | extra
        training.report_chance(
            logger, "finetune", summary, common.fail_at_chance,
            "a top classifier that did not learn (see train_top), a learning rate that is too high "
            "(finetune.learning_rate)",
        )
    training.save_outputs(model, files, history, summary, backup)
    return summary


def main() -> None:
    """Load params and run the stage on paths.train / paths.validation and the top classifier."""
    params = load_params()
    paths = params.paths
    require_folders(paths.split_manifest, paths.train, paths.validation)
    finetune(TrainingFiles.of(paths, "finetune"), paths.top_model, paths.vgg16_weights, params.vgg16.preprocessing,
             params.common, params.runtime, params.finetune)
