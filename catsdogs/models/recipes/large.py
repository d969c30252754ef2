"""The large recipe: a residual network (pairs of batch-normalised 3x3 convolutions with a shortcut),
trained like the modern recipe (AdamW, warm-up, cosine over a fixed number of epochs, best val_loss kept).

It costs several times the modern recipe per image, for more accuracy where there are thousands of
photos; it is meant to run at a larger image size (common.image_size: 160). Figures: docs/results.md.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator

from catsdogs.core.params import MAX_LAYERS, Epochs, Filters, doc
from catsdogs.models.recipes import modern
from catsdogs.models.recipes.modern import compile_modern
from catsdogs.models.recipes.tutorial import KERNEL_SIZE, POOL_SIZE

Blocks = Annotated[list[Annotated[int, Field(gt=0, le=MAX_LAYERS)]], Field(min_length=1, max_length=MAX_LAYERS)]


class Config(modern.Config):
    """The large residual recipe (train_scratch.recipe: large); run it with common.image_size: 160."""

    # The modern recipe's settings (optimizer, schedule, augmentation), with its own epochs, weight decay
    # and network.
    epochs: Epochs = doc(50, "a fixed warm-up + cosine schedule; the epoch with the best val_loss is kept")
    filters: Filters = doc([32, 64, 128, 256], "filters per stage; a 2x2 max-pool before each stage")
    weight_decay: modern.WeightDecay = doc(
        0.05, "AdamW's decoupled decay (Keras multiplies it by the learning rate); docs/results.md")
    stem: Annotated[int, Field(gt=0, le=4096)] = doc(32, "filters of the stride-2 first convolution")
    blocks: Blocks = doc([1, 1, 2, 2], "residual blocks per stage (one number per filters entry)")

    @field_validator("blocks")
    @classmethod
    def _one_block_count_per_stage(cls, blocks: list[int], info: ValidationInfo) -> list[int]:
        filters = info.data.get("filters")
        if filters is not None and len(blocks) != len(filters):
            raise ValueError(f"{len(blocks)} block counts for {len(filters)} stages (filters): give one per stage")
        return blocks


def check(config: Config, image_size: int) -> None:
    """``ValueError`` when ``image_size`` is too small for the stem and the stages' pools."""
    if modern.feature_map_side_pooled(image_size, len(config.filters)) < 1:
        raise ValueError(
            f"common.image_size={image_size} is too small for the large recipe's {len(config.filters)} stages "
            f"(recipes.large.filters): use a larger image_size (160 is its design size) or fewer stages"
        )


def build(config: Config, image_size: int, steps_per_epoch: int):
    """The residual CNN compiled as the modern recipe's: AdamW (warm-up, cosine), binary cross-entropy."""
    check(config, image_size)
    model = build_residual_cnn((image_size, image_size, 3), config.stem, config.filters, config.blocks,
                               config.dropout)
    return compile_modern(model, config, steps_per_epoch)


# No early stop: every epoch of the schedule runs, and the best epoch (val_loss) is kept, as in the modern recipe.
stopping = modern.stopping


def build_residual_cnn(input_shape: tuple[int, int, int], stem: int, filters, blocks, dropout: float):
    """Rescaling, a stride-2 3x3 stem (BatchNorm, ReLU), then per stage a 2x2 max-pool and ``blocks``
    residual blocks of ``filters`` (two 3x3 convolutions with batch norm; the shortcut a 1x1
    convolution where the width changes), global average pooling, dropout, sigmoid P(dog).

    The pools come before the stages, so no residual block runs at the stem's resolution (half the
    input): on a CPU the cost is in the large feature maps, the accuracy in the depth at small ones.
    Like the other recipes' networks it takes raw [0, 255] pixels and holds inference layers only.
    """
    import keras
    from keras import layers

    def conv_bn(x, count: int, kernel: int, name: str, relu: bool = True, strides: int = 1):
        x = layers.Conv2D(count, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.Activation("relu", name=f"{name}_relu")(x) if relu else x

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = conv_bn(x, stem, KERNEL_SIZE, "stem", strides=2)
    for stage, (count, repeats) in enumerate(zip(filters, blocks), start=1):
        x = layers.MaxPooling2D(POOL_SIZE, name=f"pool{stage}")(x)
        for block in range(1, repeats + 1):
            name = f"stage{stage}_block{block}"
            shortcut = x if x.shape[-1] == count else conv_bn(x, count, 1, f"{name}_shortcut", relu=False)
            y = conv_bn(x, count, KERNEL_SIZE, f"{name}_a")
            y = conv_bn(y, count, KERNEL_SIZE, f"{name}_b", relu=False)
            x = layers.Activation("relu", name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))
    return keras.Model(inputs, modern.p_dog_head(x, dropout), name="residual_cnn")
