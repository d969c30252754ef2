"""The modern recipe: batch-normalised conv blocks, global average pooling, AdamW with a warm-up and a
cosine decay over a fixed number of epochs, stronger augmentation; the epoch with the best val_loss is kept.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from catsdogs.core.params import AugmentationParams, Epochs, Filters, Patience, Probability, Section, doc
from catsdogs.models.recipes import Stopping
from catsdogs.models.recipes.tutorial import KERNEL_SIZE, POOL_SIZE

# AdamW's decoupled weight decay, as Keras applies it: multiplied by the learning rate at each step.
WeightDecay = Annotated[float, Field(ge=0, le=1)]


class Config(Section):
    """The modern from-scratch recipe (train_scratch.recipe: modern)."""

    epochs: Epochs = doc(60, "a fixed warm-up + cosine schedule; the epoch with the best val_loss is kept")
    filters: Filters = [32, 64, 128, 256]
    dropout: Probability = 0.3
    learning_rate: Annotated[float, Field(gt=0, le=10)] = doc(0.002, "AdamW's peak, after the warm-up")
    weight_decay: WeightDecay = 0.0001
    warmup_epochs: Patience = 2
    label_smoothing: Annotated[float, Field(ge=0, lt=0.5)] = 0.0
    augmentation: AugmentationParams = AugmentationParams(
        shear=0.0, zoom=0.2, horizontal_flip=True, rotation=0.05, translation=0.1, contrast=0.2
    )


def check(config: Config, image_size: int) -> None:
    """``ValueError`` when ``image_size`` is too small for the conv + pool blocks."""
    check_image_size(image_size, len(config.filters))


def check_image_size(image_size: int, blocks: int) -> None:
    """``ValueError`` when ``image_size`` is too small for ``blocks`` conv + pool blocks."""
    if feature_map_side_pooled(image_size, blocks) < 1:
        raise ValueError(
            f"common.image_size={image_size} is too small for {blocks} conv + max-pool blocks "
            f"(recipes.modern.filters): use a larger image_size or fewer filters"
        )


def build(config: Config, image_size: int, steps_per_epoch: int):
    """The modern CNN compiled with AdamW (warm-up, cosine) and binary cross-entropy (label smoothing)."""
    return compile_modern(build_modern_cnn((image_size, image_size, 3), config.filters, config.dropout), config,
                          steps_per_epoch)


def compile_modern(model, config, steps_per_epoch: int):
    """``model`` compiled as the modern recipe trains (also the large recipe's): AdamW with ``config``'s warm-up
    and cosine schedule, binary cross-entropy with its label smoothing."""
    import keras

    optimizer = make_modern_optimizer(
        config.learning_rate, config.weight_decay, config.warmup_epochs, config.epochs, steps_per_epoch
    )
    loss = keras.losses.BinaryCrossentropy(label_smoothing=config.label_smoothing)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    return model


def stopping(config: Config) -> Stopping:
    """No early stop: every epoch of the schedule runs, and the best epoch (val_loss) is kept."""
    return Stopping(config.epochs, config.epochs, 0, True)


def build_modern_cnn(input_shape: tuple[int, int, int], filters: list[int] | tuple[int, ...], dropout: float):
    """A small modern CNN: Rescaling, (Conv 3x3 -> BatchNorm -> ReLU -> MaxPool 2) per filter count,
    global average pooling, dropout, sigmoid P(dog).

    Batch normalisation lets it train at a high learning rate from the first epoch
    (no plateau to leave), and global average pooling replaces the tutorial's big
    dense layer (most of its parameters), so it overfits less on few photos. The first
    convolution has stride 2: full-resolution feature maps cost most of the compute
    on a CPU and carry little that tells a cat from a dog. Like the tutorial's, it
    takes raw [0, 255] pixels and holds inference layers only.
    """
    import keras
    from keras import layers

    check_image_size(input_shape[0], len(filters))
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for index, count in enumerate(filters, start=1):
        stride = 2 if index == 1 else 1
        x = layers.Conv2D(count, KERNEL_SIZE, strides=stride, padding="same", use_bias=False, name=f"conv{index}")(x)
        x = layers.BatchNormalization(name=f"bn{index}")(x)
        x = layers.Activation("relu", name=f"relu{index}")(x)
        x = layers.MaxPooling2D(POOL_SIZE, name=f"pool{index}")(x)
    return keras.Model(inputs, p_dog_head(x, dropout), name="modern_cnn")


def p_dog_head(x, dropout: float):
    """The modern and large networks' head: global average pooling, dropout, a float32 sigmoid P(dog)."""
    from keras import layers

    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    return layers.Dense(1, activation="sigmoid", dtype="float32", name="p_dog")(x)


def feature_map_side_pooled(image_size: int, blocks: int) -> int:
    """Side of the modern CNN's last feature map: a stride-2 first convolution, then a 2x2 pool per block."""
    side = -(-image_size // 2)
    for _ in range(blocks):
        side //= POOL_SIZE
    return side


def make_modern_optimizer(
    learning_rate: float, weight_decay: float, warmup_epochs: int, epochs: int, steps_per_epoch: int
):
    """AdamW whose learning rate warms up linearly to ``learning_rate``, then follows a cosine to zero."""
    import keras

    total = max(epochs * steps_per_epoch, 1)
    warmup = min(warmup_epochs * steps_per_epoch, total - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else learning_rate, decay_steps=total - warmup, alpha=0.0,
        warmup_target=learning_rate if warmup else None, warmup_steps=warmup,
    )
    return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=weight_decay)
