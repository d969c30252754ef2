"""Stage finetune (beyond the tutorial): fine-tune VGG16's last block together with the top classifier.

The model takes raw RGB [0, 255] pixels: preprocessing layer -> VGG16 base (the
weights extract_features used) -> the trained top classifier (models/top.keras).
Layers below ``finetune.trainable_from`` stay frozen; SGD at a low learning rate
with the training augmentation; early stopping on val_loss restores the best
epoch. Writes models/finetuned.keras and reports/finetune/.

``finetune.epochs: 0`` skips the training: the stage still writes the stacked
model (exactly the bottleneck model, applied to images) so later stages treat
it like any image model, and metrics.json says ``"skipped": true``.
"""

from __future__ import annotations

import logging
import time

import keras

from stages.lib import vgg
from stages.lib.cli import run_stage
from stages.lib.data import list_labelled_images, make_image_dataset
from stages.lib.params import Params, load_params
from stages.lib.seeding import seed_everything
from stages.lib.training import (
    fit_verbosity,
    load_model,
    save_model,
    set_mixed_precision,
    summarize_history,
    write_training_reports,
)

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


def build_finetune_model(base, top, preprocessing: str, image_size: int):
    """Raw [0, 255] images -> preprocessing -> VGG16 base -> top classifier -> P(dog)."""
    expected = tuple(top.input_shape[1:])
    produced = tuple(base.output_shape[1:])
    if expected != produced:
        raise ValueError(
            f"the top classifier expects features of shape {expected} but VGG16 at "
            f"{image_size}x{image_size} gives {produced}: rerun extract_features and train_top"
        )
    inputs = keras.Input((image_size, image_size, 3), name="image")
    features = base(vgg.ImagePreprocessing(preprocessing, name=vgg.PREPROCESSING_NAME)(inputs))
    return keras.Model(inputs, top(features), name="vgg16_finetuned")


def make_augment(params: Params):
    """The training augmentation (train_scratch.augmentation) as a per-batch tf.data function, or None."""
    from stages.lib.scratch_model import apply_augmentation, build_augmentation

    layers = build_augmentation(**params.train_scratch.augmentation.model_dump(), seed=params.common.seed)
    if not layers:
        return None
    return lambda images, labels: apply_augmentation(layers, images, labels)


def finetune(model, params: Params, train, validation) -> tuple[dict, dict]:
    """Compile (SGD with momentum) and fit with early stopping; returns (history, extra summary figures)."""
    common, section = params.common, params.finetune
    train_paths, train_labels = train
    validation_paths, validation_labels = validation
    train_data = make_image_dataset(
        train_paths, train_labels, common.image_size, common.batch_size,
        shuffle=True, seed=common.seed, augment=make_augment(params),
    )
    validation_data = make_image_dataset(validation_paths, validation_labels, common.image_size, common.batch_size)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=section.learning_rate, momentum=section.momentum),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    # Where fine-tuning starts: the bottleneck model's own validation figures.
    initial = model.evaluate(validation_data, return_dict=True, verbose=fit_verbosity())
    stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=section.patience, restore_best_weights=True, verbose=1
    )
    history = model.fit(
        train_data,
        validation_data=validation_data,
        epochs=section.epochs,
        callbacks=[stopping],
        shuffle=False,  # the tf.data pipeline shuffles (seeded); fit cannot shuffle a dataset
        verbose=fit_verbosity(),
    )
    extra = {"initial_val_loss": float(initial["loss"]), "initial_val_accuracy": float(initial["accuracy"])}
    return history.history, extra


def main() -> None:
    """Load params, the top classifier and the images; fine-tune (or skip); save model and reports."""
    params = load_params()
    common, section, paths = params.common, params.finetune, params.paths
    seed_everything(common.seed, common.deterministic)
    train = list_labelled_images(paths.train)
    validation = list_labelled_images(paths.validation)
    policy = set_mixed_precision(section.mixed_precision)
    top = load_model(paths.top_model)
    weights = params.extract_features.weights
    base = vgg.build_vgg16_base(common.image_size, weights, common.seed)  # the weights the features came from
    seed_everything(common.seed, common.deterministic)  # same shuffling/augmentation whatever the weights
    freeze_below(base, section.trainable_from)
    model = build_finetune_model(base, top, params.extract_features.preprocessing, common.image_size)
    trainable = int(sum(keras.ops.size(weight) for weight in model.trainable_weights))
    summary = {
        "skipped": section.epochs == 0,
        "trainable_from": section.trainable_from,
        "trainable_parameters": trainable,
        "dtype_policy": policy,
        "train_count": len(train[0]),
        "validation_count": len(validation[0]),
    }
    history: dict = {}
    if section.epochs == 0:
        logger.info("finetune.epochs is 0: writing the stacked VGG16 + top model without training it")
        summary["epochs_run"] = 0
    else:
        logger.info("fine-tuning from %s (%d trainable parameters), up to %d epochs", section.trainable_from,
                    trainable, section.epochs)
        started = time.perf_counter()
        history, extra = finetune(model, params, train, validation)
        summary |= summarize_history(history) | extra | {"train_seconds": round(time.perf_counter() - started, 2)}
    save_model(model, paths.finetuned_model)
    write_training_reports(paths.finetune_reports, history, summary)


if __name__ == "__main__":
    run_stage("finetune", main)
