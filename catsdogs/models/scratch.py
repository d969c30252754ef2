"""The CNNs trained from scratch and their optimizers (pure builders, no I/O).

Two recipes: ``tutorial`` (the 2017 tutorial's network, SGD with time decay) and
``modern`` (batch-normalised conv blocks, global average pooling, AdamW with a
warm-up and a cosine decay).

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

    if feature_map_side_pooled(input_shape[0], len(filters)) < 1:
        raise ValueError(
            f"common.image_size={input_shape[0]} is too small for {len(filters)} conv + max-pool blocks "
            f"(train_scratch.modern.filters): use a larger image_size or fewer filters"
        )
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for index, count in enumerate(filters, start=1):
        stride = 2 if index == 1 else 1
        x = layers.Conv2D(count, KERNEL_SIZE, strides=stride, padding="same", use_bias=False, name=f"conv{index}")(x)
        x = layers.BatchNormalization(name=f"bn{index}")(x)
        x = layers.Activation("relu", name=f"relu{index}")(x)
        x = layers.MaxPooling2D(POOL_SIZE, name=f"pool{index}")(x)
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="p_dog")(x)
    return keras.Model(inputs, outputs, name="modern_cnn")


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


def compile_model(recipe: str, image_size: int, steps_per_epoch: int, tutorial: dict, modern: dict):
    """The recipe's CNN, compiled with its optimizer and loss (binary cross-entropy, smoothed for modern)."""
    import keras

    shape = (image_size, image_size, 3)
    if recipe == "modern":
        model = build_modern_cnn(shape, modern["filters"], modern["dropout"])
        optimizer = make_modern_optimizer(
            modern["learning_rate"], modern["weight_decay"], modern["warmup_epochs"], modern["epochs"], steps_per_epoch
        )
        loss = keras.losses.BinaryCrossentropy(label_smoothing=modern["label_smoothing"])
    else:
        model = build_scratch_cnn(
            shape, tutorial["filters"], tutorial["dense_units"], tutorial["conv_dropout"], tutorial["dense_dropout"]
        )
        optimizer = make_optimizer(
            tutorial["learning_rate"], tutorial["momentum"], tutorial["decay"], tutorial["epochs"]
        )
        loss = keras.losses.BinaryCrossentropy()
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    return model
