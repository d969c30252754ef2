"""The project's own Keras layers, registered for saving and for loading in Keras safe mode.

Safe mode refuses ``Lambda`` layers (they carry arbitrary code), so anything a
saved model needs beyond Keras' own layers is a registered class here, and
:data:`CUSTOM_OBJECTS` lists every one of them for the model loader.
"""

from __future__ import annotations

import keras
from keras import layers, ops

PREPROCESSING_MODES = ("vgg16", "rescale")
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)  # keras.applications.vgg16.preprocess_input ("caffe")


@keras.saving.register_keras_serializable(package="catsdogs")
class ImagePreprocessing(layers.Layer):
    """Raw RGB [0, 255] to VGG16's input: ``vgg16`` (BGR, ImageNet mean removed) or ``rescale`` (x/255)."""

    def __init__(self, mode: str = "vgg16", **kwargs):
        # float32 even under a mixed policy: the mean subtraction is exact, the first conv casts.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if mode not in PREPROCESSING_MODES:
            raise ValueError(f"preprocessing {mode!r} is not one of {', '.join(PREPROCESSING_MODES)}")
        self.mode = mode

    def call(self, inputs):
        """Apply the preprocessing to a batch of images (channels last)."""
        images = ops.cast(inputs, self.compute_dtype)
        if self.mode == "rescale":
            return images / 255.0
        mean = ops.convert_to_tensor(IMAGENET_MEAN_BGR, dtype=self.compute_dtype)
        return ops.flip(images, axis=-1) - mean

    def compute_output_shape(self, input_shape):
        """Same shape as the input."""
        return input_shape

    def get_config(self):
        """The layer's config, with its mode."""
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="catsdogs")
class HorizontalFlip(layers.Layer):
    """The mirror image of a batch of images (channels last): test-time augmentation, no randomness."""

    def call(self, inputs):
        """Flip left and right."""
        return ops.flip(inputs, axis=-2)

    def compute_output_shape(self, input_shape):
        """Same shape as the input."""
        return input_shape


# Every project layer, by the name Keras records in a saved model.
CUSTOM_OBJECTS = {
    keras.saving.get_registered_name(layer): layer for layer in (ImagePreprocessing, HorizontalFlip)
}
