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

from catsdogs.train import training
from catsdogs.models import vgg
from catsdogs.data.augmentation import batch_augmentation
from catsdogs.data.datasets import list_labelled_images, make_image_dataset
from catsdogs.models.files import load_model, save_model
from catsdogs.core.params import load_params
from catsdogs.models.precision import set_mixed_precision
from catsdogs.core.progress import prediction_estimate_callback, training_estimate_callback
from catsdogs.train.resume import fit_resumable, resume_backup
from catsdogs.core.seeding import seed_everything

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
    model, train, validation, *, image_size: int, batch_size: int, seed: int, augment, epochs: int,
    learning_rate: float, momentum: float, patience: int, backup=None,
) -> tuple[dict, dict]:
    """Compile (SGD with momentum) and fit with early stopping, resuming from ``backup`` (see
    :mod:`catsdogs.train.resume`); returns (history, extra summary figures)."""
    train_data = make_image_dataset(*train, image_size, batch_size, shuffle=True, seed=seed, augment=augment)
    validation_data = make_image_dataset(*validation, image_size, batch_size)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    # Where fine-tuning starts: the bottleneck model's own validation figures (a whole pass of VGG16 over the
    # validation images: minutes on a CPU at Kaggle's 5,000, so it is announced).
    logger.info("starting point: scoring the model before fine-tuning on %d validation images", len(validation[0]))
    estimate = prediction_estimate_callback(logger, "starting point")
    initial = model.evaluate(validation_data, return_dict=True, verbose=training.fit_verbosity(), callbacks=[estimate])
    logger.info("starting point: val_loss %.4f, val_accuracy %.4f", initial["loss"], initial["accuracy"])
    stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True, verbose=1)
    history, resumed_from_epoch = fit_resumable(
        model, backup, stopping, epochs=epochs,
        callbacks=[training_estimate_callback(logger, "fine-tuning", epochs, None)],
        x=train_data, validation_data=validation_data, verbose=training.fit_verbosity(),
        shuffle=False,  # the tf.data pipeline shuffles (seeded); fit cannot shuffle a dataset
    )
    extra = {"initial_val_loss": float(initial["loss"]), "initial_val_accuracy": float(initial["accuracy"]),
             "resumed_from_epoch": resumed_from_epoch}
    return history, extra


# finetune's arguments that do not change what it computes (the rest key a resume backup).
_NOT_SETTINGS = ("train_dir", "validation_dir", "top_model_path", "model_path", "reports_dir", "backups")


def finetune(
    train_dir: str | Path,
    validation_dir: str | Path,
    top_model_path: str | Path,
    model_path: str | Path,
    reports_dir: str | Path,
    *,
    image_size: int,
    batch_size: int,
    seed: int,
    deterministic: bool,
    fail_at_chance: bool,
    weights_file: str | Path,
    preprocessing: str,
    augmentation: dict,
    epochs: int,
    learning_rate: float,
    momentum: float,
    trainable_from: str,
    patience: int,
    mixed_precision: bool | str,
    backups: str | Path | None = None,
) -> dict:
    """Stack VGG16 and the top classifier, fine-tune (or skip when ``epochs`` is 0), save model and reports.

    With ``backups`` (a folder outside the outputs) a killed run resumes from its last finished epoch."""
    settings = {key: value for key, value in locals().items() if key not in _NOT_SETTINGS}
    seed_everything(seed, deterministic)
    train = list_labelled_images(train_dir)
    validation = list_labelled_images(validation_dir)
    policy = set_mixed_precision(mixed_precision)
    top = load_model(top_model_path)
    base = vgg.build_vgg16_base(image_size, weights_file)  # the weights the features came from
    seed_everything(seed, deterministic)  # same shuffling/augmentation whatever the weights
    freeze_below(base, trainable_from)
    model = vgg.vgg16_image_model(base, preprocessing, image_size, top=top, name="vgg16_finetune")
    trainable = int(sum(keras.ops.size(weight) for weight in model.trainable_weights))
    summary = {
        "skipped": epochs == 0,
        "trainable_from": trainable_from,
        "trainable_parameters": trainable,
        "dtype_policy": policy,
        "train_count": len(train[0]),
        "validation_count": len(validation[0]),
    }
    history: dict = {}
    backup = None
    if epochs == 0:
        logger.info("finetune.epochs is 0: writing the stacked VGG16 + top model without training it")
        summary["epochs_run"] = summary["resumed_from_epoch"] = 0
    else:
        logger.info("fine-tuning from %s (%d trainable parameters), up to %d epochs", trainable_from, trainable, epochs)
        started = time.perf_counter()
        data = [train_dir, validation_dir, top_model_path, weights_file]
        backup = resume_backup(backups, "finetune", settings, data)
        history, extra = fit_finetune(
            model, train, validation, image_size=image_size, batch_size=batch_size, seed=seed,
            augment=batch_augmentation(**augmentation, seed=seed), epochs=epochs, learning_rate=learning_rate,
            momentum=momentum, patience=patience, backup=backup,
        )
        seconds = time.perf_counter() - started
        summary |= training.summarize_history(history) | extra
        summary |= training.timing_summary(seconds, len(train[0]), summary["epochs_run"])
        summary |= training.chance_check(summary["best_val_accuracy"], validation[1])
        training.report_chance(
            logger, "finetune", summary, len(validation[0]), fail_at_chance,
            "a top classifier that did not learn (see train_top), a learning rate that is too high "
            "(finetune.learning_rate)",
        )
    save_model(model, model_path)
    training.write_training_reports(reports_dir, history, summary)
    if backup is not None:
        backup.remove()
    return summary


def main() -> None:
    """Load params and run the stage on paths.train / paths.validation and the top classifier."""
    params = load_params()
    paths, features = params.paths, params.extract_features
    finetune(
        paths.train, paths.validation, paths.top_model, paths.finetune_model, paths.finetune_reports,
        **params.common.model_dump(),
        weights_file=paths.vgg16_weights,
        preprocessing=features.preprocessing,
        augmentation=params.train_scratch.augmentation.model_dump(),
        **params.finetune.model_dump(),
        backups=paths.backups,
    )
