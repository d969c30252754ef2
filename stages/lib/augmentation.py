"""The training augmentation: seeded Keras preprocessing layers applied to batches in tf.data.

Augmentation is never part of a saved model (the model holds inference layers
only, and loads in safe mode); :func:`batch_augmentation` gives the function
that the training pipelines map over their batches.
"""

from __future__ import annotations


def augmentation_layers(shear: float, zoom: float, horizontal_flip: bool, seed: int) -> list:
    """The tutorial's augmentation as seeded Keras layers (an empty list: none).

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


def batch_augmentation(shear: float, zoom: float, horizontal_flip: bool, seed: int):
    """A function of (images, labels) that augments one batch (training mode), or None for no augmentation."""
    layers = augmentation_layers(shear, zoom, horizontal_flip, seed)
    if not layers:
        return None

    def augment(images, labels):
        for layer in layers:
            images = layer(images, training=True)
        return images, labels

    return augment
