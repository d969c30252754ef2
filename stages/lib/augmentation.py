"""The training augmentation: seeded Keras preprocessing layers applied to batches in tf.data.

Augmentation is never part of a saved model (the model holds inference layers
only, and loads in safe mode); :func:`batch_augmentation` gives the function
that the training pipelines map over their batches.
"""

from __future__ import annotations


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
    if rotation > 0:
        augmentation.append(layers.RandomRotation(rotation, fill_mode="nearest", seed=seed + 3, name="rotation"))
    if translation > 0:
        augmentation.append(
            layers.RandomTranslation(translation, translation, fill_mode="nearest", seed=seed + 4, name="translation")
        )
    if contrast > 0:
        augmentation.append(layers.RandomContrast(contrast, value_range=(0, 255), seed=seed + 5, name="contrast"))
    return augmentation


def batch_augmentation(*, seed: int, **settings):
    """A function of (images, labels) that augments one batch (training mode), or None for no augmentation.

    ``settings`` are :func:`augmentation_layers`' (an augmentation params section).
    """
    layers = augmentation_layers(**settings, seed=seed)
    if not layers:
        return None

    def augment(images, labels):
        for layer in layers:
            images = layer(images, training=True)
        return images, labels

    return augment
