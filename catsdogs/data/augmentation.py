"""The training augmentation: seeded Keras preprocessing layers applied to batches in tf.data.

Augmentation is never part of a saved model (the model holds inference layers
only, and loads in safe mode); :func:`batch_augmentation` gives the
:class:`BatchAugmentation` that the training pipelines apply to their batches.

The random draws and the pixel work are two steps: the layers' seed generators
are state, and tf.data calls a map in parallel in no fixed order, so two
batches could read the same state (the same parameters twice) and a seed would
not repeat the pictures. The draws therefore run one batch at a time, in the
order of the batches (a few small ops), and only the warp and contrast, which
depend on nothing but their inputs, run in parallel.

The geometric layers (shear, zoom, flip, rotation, translation) draw their
random parameters as Keras does, but the batch is warped once, by the product
of their matrices, instead of once per layer: what ImageDataGenerator does,
one interpolation instead of up to five (sharper pictures, and a fraction of
the CPU; docs/design.md "The recipes"). The warp itself is OpenCV's ``warpAffine``
(bilinear, edges replicated), which gives TensorFlow's projective-transform
pixels to within 0.01 of 255 in a quarter to a third of its CPU time:
TensorFlow's kernel took about a tenth of the CNN's training step, on the same
two cores.
"""

from __future__ import annotations

GEOMETRIC = ("shear", "zoom", "flip", "rotation", "translation")  # layer names, in the order they apply


def augmentation_layers(
    *, shear: float, zoom: float, horizontal_flip: bool, rotation: float, translation: float, contrast: float,
    seed: int,
) -> list:
    """The training augmentation as seeded Keras layers (an empty list: none); a value of 0 leaves a layer out.

    The tutorial's is shear, zoom and flip. ``ImageDataGenerator(shear_range=0.2)``
    read 0.2 as an angle in *degrees* (a no-op in practice); ``RandomShear`` reads it
    as a shear coefficient (up to about 11 degrees), which is what the tutorial
    meant. Zoom draws the two axes independently in [1 - zoom, 1 + zoom], like
    ImageDataGenerator; edges are filled with the nearest pixel, ImageDataGenerator's
    default. The modern recipe adds rotation (a fraction of a full turn),
    translation (a fraction of the side) and contrast.
    """
    from keras import layers

    # float32 whatever the global dtype policy: the pixels stay float32 [0, 255] in tf.data, and under
    # mixed_precision the model casts its inputs itself.
    float32 = {"dtype": "float32"}
    geometric = {**float32, "fill_mode": "nearest"}
    augmentation = []
    if shear > 0:
        augmentation.append(layers.RandomShear(x_factor=shear, seed=seed, name="shear", **geometric))
    if zoom > 0:
        augmentation.append(
            layers.RandomZoom(
                height_factor=(-zoom, zoom), width_factor=(-zoom, zoom), seed=seed + 1, name="zoom", **geometric
            )
        )
    if horizontal_flip:
        augmentation.append(layers.RandomFlip("horizontal", seed=seed + 2, name="flip", **float32))
    if rotation > 0:
        augmentation.append(layers.RandomRotation(rotation, seed=seed + 3, name="rotation", **geometric))
    if translation > 0:
        augmentation.append(
            layers.RandomTranslation(translation, translation, seed=seed + 4, name="translation", **geometric)
        )
    if contrast > 0:
        augmentation.append(
            layers.RandomContrast(contrast, value_range=(0, 255), seed=seed + 5, name="contrast", **float32)
        )
    return augmentation


def layer_matrix(layer, images):
    """A batch of 3x3 matrices that map the layer's output pixel (x, y, 1) to the input pixel it samples.

    The random parameters come from the layer's own ``get_random_transformation``
    (its seed generator, so the same draws as calling the layer); the matrix is
    the one the layer would warp with (tests compare each layer alone with Keras).
    """
    import tensorflow as tf

    transformation = layer.get_random_transformation(images, training=True)
    batch = tf.shape(images)[0]
    height, width = tf.cast(tf.shape(images)[1], tf.float32), tf.cast(tf.shape(images)[2], tf.float32)
    one, zero = tf.ones([batch]), tf.zeros([batch])
    if layer.name == "shear":
        factors = tf.cast(transformation["shear_factor"], tf.float32)
        rows = [one, factors[:, 0], zero, factors[:, 1], one, zero]
    elif layer.name == "zoom":
        zoom_x = tf.cast(transformation["width_zoom"][:, 0], tf.float32)
        zoom_y = tf.cast(transformation["height_zoom"][:, 0], tf.float32)
        rows = [zoom_x, zero, (width - 1.0) / 2.0 * (1.0 - zoom_x), zero, zoom_y, (height - 1.0) / 2.0 * (1.0 - zoom_y)]
    elif layer.name == "flip":  # x -> (width - 1) - x for the flipped images
        flips = tf.reshape(transformation["flips"], [batch])
        rows = [tf.where(flips, -one, one), zero, tf.where(flips, (width - 1.0) * one, zero), zero, one, zero]
    elif layer.name == "rotation":
        matrix = tf.cast(transformation["rotation_matrix"], tf.float32)
        rows = [matrix[:, i] for i in range(6)]
    elif layer.name == "translation":
        shifts = tf.cast(transformation["translations"], tf.float32)
        rows = [one, zero, -shifts[:, 0], zero, one, -shifts[:, 1]]
    else:
        raise ValueError(f"not a geometric augmentation layer: {layer.name}")
    return tf.reshape(tf.stack([*rows, zero, zero, one], axis=1), [batch, 3, 3])


def combined_matrix(images, geometric: list):
    """The product of the layers' matrices (a batch of 3x3): each layer draws its parameters once."""
    import tensorflow as tf

    matrix = None
    for layer in geometric:  # output = layer_n(...layer_1(x)) samples x at M_1 @ ... @ M_n @ p
        current = layer_matrix(layer, images)
        matrix = current if matrix is None else tf.linalg.matmul(matrix, current)
    return matrix


def warp_once(images, geometric: list):
    """The batch warped by the product of the layers' matrices: one bilinear interpolation, edges nearest."""
    return warp(images, combined_matrix(images, geometric))


def warp(images, matrix):
    """The float32 batch sampled at ``matrix[i] @ (x, y, 1)`` (a batch of 3x3 affine matrices, or their first rows)."""
    import tensorflow as tf

    warped = tf.numpy_function(warp_affine, [tf.cast(images, tf.float32), matrix[:, :2, :]], tf.float32,
                               stateful=False, name="warp_affine")
    return tf.ensure_shape(warped, images.shape)


def warp_affine(images, matrices):
    """NumPy: each image sampled at ``matrices[i] @ (x, y, 1)`` (2x3 each), bilinear, edges replicated.

    OpenCV's ``warpAffine`` with ``WARP_INVERSE_MAP`` (the matrix maps output
    pixels to input pixels, as TensorFlow's ImageProjectiveTransformV3 does, and
    ``BORDER_REPLICATE`` is its fill mode "nearest"). OpenCV releases the GIL, so
    tf.data's parallel calls run side by side; its own thread pool is set to one
    thread, since tf.data already warps several batches at once.
    """
    import cv2
    import numpy as np

    cv2.setNumThreads(1)
    warped = np.empty_like(images)
    height, width = images.shape[1:3]
    for index, (image, matrix) in enumerate(zip(images, matrices)):
        warped[index] = cv2.warpAffine(
            image, matrix, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        ).reshape(image.shape)
    return warped


class BatchAugmentation:
    """The training augmentation of (images, labels) batches: :meth:`draw` the parameters, :meth:`apply` them.

    Calling it does both on one batch; :meth:`over` applies it to a dataset of
    batches, the draws in order and the pixels in parallel (module docstring).
    """

    def __init__(self, layers: list):
        self.geometric = [layer for layer in layers if layer.name in GEOMETRIC]
        self.others = [layer for layer in layers if layer.name not in GEOMETRIC]

    def draw(self, images, labels):
        """The batch with its random parameters: the warp's matrices and the other layers' draws (stateful)."""
        draws = {layer.name: layer.get_random_transformation(images, training=True) for layer in self.others}
        if self.geometric:
            draws["matrix"] = combined_matrix(images, self.geometric)
        return images, labels, draws

    def apply(self, images, labels, draws):
        """The batch as float32, warped once, then contrast (a function of its inputs only)."""
        import tensorflow as tf

        images = tf.cast(images, tf.float32)
        if self.geometric:
            images = warp(images, draws["matrix"])
        for layer in self.others:
            images = layer.transform_images(images, draws[layer.name], training=True)
        return images, labels

    def __call__(self, images, labels):
        return self.apply(*self.draw(images, labels))

    def over(self, batches):
        """A dataset of augmented float32 batches: one draw at a time in the batches' order, pixels in parallel."""
        import tensorflow as tf

        return batches.map(self.draw).map(self.apply, num_parallel_calls=tf.data.AUTOTUNE)


def batch_augmentation(*, seed: int, **settings) -> BatchAugmentation | None:
    """The training augmentation (:class:`BatchAugmentation`), or None when every layer is off.

    ``settings`` are :func:`augmentation_layers`' (an augmentation params section).
    The geometric layers become one warp by the product of their matrices (:func:`warp`); contrast follows it.
    """
    layers = augmentation_layers(**settings, seed=seed)
    return BatchAugmentation(layers) if layers else None
