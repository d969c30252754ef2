"""The tutorial's small CNN, its optimizer and its training augmentation (pure builders, no I/O).

The model ends in a single sigmoid unit giving P(dog), the project's contract for
every classifier. It is equivalent to the tutorial's 2-way softmax (softmax over
two logits is a sigmoid of their difference) with fewer parameters (65 instead of
130 in the last layer); its binary cross-entropy is exactly Kaggle's log loss; and
its output has the same shape and meaning as the VGG16 models', so evaluation,
predictions and the submission treat all models alike.
"""

from __future__ import annotations

POOL_SIZE = 2
KERNEL_SIZE = 3


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
        f"(train_scratch.filters): the feature map would shrink to nothing; use an image_size of at "
        f"least {smallest} or fewer filters"
    )


def build_scratch_cnn(
    input_shape: tuple[int, int, int],
    filters: list[int] | tuple[int, ...] = (32, 32, 64),
    dense_units: int = 64,
    conv_dropout: float = 0.25,
    dense_dropout: float = 0.5,
):
    """The tutorial's CNN: Rescaling, (Conv 3x3 ReLU + MaxPool 2) per filter count, Dense, sigmoid P(dog).

    Takes raw [0, 255] pixels (a Rescaling(1/255) layer comes first). The first
    convolution pads ('same'), the others do not ('valid'), as in the tutorial:
    at 150x150 the last feature map is 17x17x64 and the model has 1,212,513
    parameters. Augmentation is not part of the model (it is applied to training
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


def build_augmentation(shear: float, zoom: float, horizontal_flip: bool, seed: int) -> list:
    """The tutorial's training augmentation as seeded Keras preprocessing layers (empty list: none).

    ``ImageDataGenerator(shear_range=0.2)`` read 0.2 as an angle in *degrees*
    (a no-op in practice); ``RandomShear`` reads it as a shear coefficient (up to
    about 11 degrees), which is what the tutorial meant. Zoom draws the two axes
    independently in [1 - zoom, 1 + zoom], like ImageDataGenerator; edges are
    filled with the nearest pixel, ImageDataGenerator's default.
    """
    from keras import layers

    augmentation = []
    if shear > 0:
        augmentation.append(layers.RandomShear(x_factor=shear, fill_mode="nearest", seed=seed, name="shear"))
    if zoom > 0:
        augmentation.append(
            layers.RandomZoom(
                height_factor=(-zoom, zoom), width_factor=(-zoom, zoom), fill_mode="nearest", seed=seed + 1,
                name="zoom",
            )
        )
    if horizontal_flip:
        augmentation.append(layers.RandomFlip("horizontal", seed=seed + 2, name="flip"))
    return augmentation


def apply_augmentation(augmentation: list, images, labels):
    """Apply the augmentation layers to one batch of images (training mode); labels pass through."""
    for layer in augmentation:
        images = layer(images, training=True)
    return images, labels
