"""The 2017 tutorial's recipe: its small CNN (3 conv/pool blocks, a dense layer), SGD with momentum and
time decay, its shear/zoom/flip augmentation, early stopping on validation loss.

The model ends in a single sigmoid unit giving P(dog), the project's contract for
every classifier. It is equivalent to the tutorial's 2-way softmax (softmax over
two logits is a sigmoid of their difference) with fewer parameters (65 instead of
130 in the last layer); its binary cross-entropy is exactly Kaggle's log loss; and
its output has the same shape and meaning as the VGG16 models', so evaluation,
predictions and the submission treat all models alike.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from catsdogs.core.params import (
    MAX_EPOCHS,
    MAX_UNITS,
    AugmentationParams,
    Epochs,
    Filters,
    Patience,
    PositiveFloat,
    Probability,
    Section,
    doc,
)
from catsdogs.models.recipes import Stopping

POOL_SIZE = 2
KERNEL_SIZE = 3


class Config(Section):
    """The tutorial's recipe (train_scratch.recipe: tutorial)."""

    epochs: Epochs = 50
    learning_rate: PositiveFloat = 0.01
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    decay: Annotated[float, Field(ge=0)] | None = doc(None, "null: learning_rate / epochs (the tutorial's time decay)")
    patience: Patience = doc(8, "the tutorial's 2 (and 5) stop a noisy run that is still improving (docs/results.md)")
    start_from_epoch: Annotated[int, Field(ge=0, le=MAX_EPOCHS)] = doc(
        10, "early stopping watches val_loss from this epoch on (past the initial plateau)")
    restore_best_weights: bool = True
    filters: Filters = [32, 32, 64]
    dense_units: Annotated[int, Field(gt=0, le=MAX_UNITS)] = 64
    conv_dropout: Probability = 0.25
    dense_dropout: Probability = 0.5
    augmentation: AugmentationParams = AugmentationParams()


def check(config: Config, image_size: int) -> None:
    """``ValueError`` when ``image_size`` is too small for the conv + pool blocks."""
    check_image_size(image_size, len(config.filters))


def build(config: Config, image_size: int, steps_per_epoch: int):
    """The tutorial's CNN compiled with SGD + time decay and binary cross-entropy."""
    import keras

    model = build_scratch_cnn(
        (image_size, image_size, 3), config.filters, config.dense_units, config.conv_dropout, config.dense_dropout
    )
    optimizer = make_optimizer(config.learning_rate, config.momentum, config.decay, config.epochs)
    model.compile(optimizer=optimizer, loss=keras.losses.BinaryCrossentropy(), metrics=["accuracy"])
    return model


def stopping(config: Config) -> Stopping:
    """Early stopping on val_loss, as the tutorial (with a longer patience, from ``start_from_epoch``)."""
    return Stopping(config.epochs, config.patience, config.start_from_epoch, config.restore_best_weights)


def feature_map_side(image_size: int, conv_layers: int) -> int:
    """Side of the last feature map: the first conv keeps the size ('same'), later ones lose 2 ('valid')."""
    side = image_size
    for index in range(conv_layers):
        if index > 0:
            side -= KERNEL_SIZE - 1
        side //= POOL_SIZE
        if side < 1:
            return 0
    return side


def check_image_size(image_size: int, conv_layers: int) -> None:
    """Raise ValueError when ``image_size`` is too small for ``conv_layers`` conv + pool blocks."""
    if feature_map_side(image_size, conv_layers) >= 1:
        return
    smallest = next(size for size in range(1, 4096) if feature_map_side(size, conv_layers) >= 1)
    raise ValueError(
        f"common.image_size={image_size} is too small for {conv_layers} conv + max-pool blocks "
        f"(recipes.tutorial.filters): the feature map would shrink to nothing; use an image_size of at "
        f"least {smallest} or fewer filters"
    )


def build_scratch_cnn(
    input_shape: tuple[int, int, int],
    filters: list[int] | tuple[int, ...],
    dense_units: int,
    conv_dropout: float,
    dense_dropout: float,
):
    """The tutorial's CNN: Rescaling, (Conv 3x3 ReLU + MaxPool 2) per filter count, Dense, sigmoid P(dog).

    Takes raw [0, 255] pixels (a Rescaling(1/255) layer comes first). The first
    convolution pads ('same'), the others do not ('valid'), as in the tutorial:
    with the tutorial's filters (32, 32, 64) at 150x150 the last feature map is
    17x17x64. Augmentation is not part of the model (it is applied to training
    batches in the tf.data pipeline), so the saved model holds only inference
    layers and loads in Keras safe mode. The last Dense outputs float32 so that
    mixed precision never degrades the probabilities or the loss.
    """
    import keras
    from keras import layers

    check_image_size(input_shape[0], len(filters))
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for index, count in enumerate(filters):
        padding = "same" if index == 0 else "valid"
        x = layers.Conv2D(count, KERNEL_SIZE, padding=padding, activation="relu", name=f"conv{index + 1}")(x)
        x = layers.MaxPooling2D(POOL_SIZE, name=f"pool{index + 1}")(x)
    x = layers.Dropout(conv_dropout, name="conv_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense_units, activation="relu", name="dense")(x)
    x = layers.Dropout(dense_dropout, name="dense_dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="p_dog")(x)
    return keras.Model(inputs, outputs, name="scratch_cnn")


def time_decay_schedule(learning_rate: float, decay: float | None, epochs: int):
    """The tutorial's SGD time decay as a Keras 3 schedule: lr / (1 + decay * step), step = batch.

    Keras 2's ``SGD(decay=...)`` computed ``lr / (1 + decay * iterations)`` with
    ``iterations`` counting optimizer steps (batches), not epochs;
    ``InverseTimeDecay(decay_steps=1, decay_rate=decay)`` computes the same.
    ``decay=None`` means the tutorial's ``learning_rate / epochs``.
    """
    import keras

    if decay is None:
        decay = learning_rate / epochs
    return keras.optimizers.schedules.InverseTimeDecay(
        initial_learning_rate=learning_rate, decay_steps=1, decay_rate=decay, staircase=False
    )


def make_optimizer(learning_rate: float, momentum: float, decay: float | None, epochs: int):
    """SGD with momentum and the tutorial's time decay."""
    import keras

    return keras.optimizers.SGD(learning_rate=time_decay_schedule(learning_rate, decay, epochs), momentum=momentum)
