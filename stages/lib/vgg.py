"""VGG16 for the bottleneck stages: its weights, its preprocessing layer, the feature extractor.

``extract_features.weights`` is ``imagenet`` (Keras downloads the no-top weights
once into ``$KERAS_HOME/models``), ``none`` (random weights, seeded: tests) or the
path of a local weights file (air-gapped machines). A local file is checked:
every VGG16 layer must be loaded from it, else a ``ValueError`` names the file.

Preprocessing is a registered, serializable layer (safe-mode loading refuses
Lambda layers), so a saved image model takes raw RGB [0, 255] pixels.
Importing this module registers it; ``training.load_model`` imports it.
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

logger = logging.getLogger(__name__)

PREPROCESSING_MODES = ("vgg16", "rescale")
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)  # keras.applications.vgg16.preprocess_input ("caffe")
NOTOP_WEIGHTS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
NOTOP_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + NOTOP_WEIGHTS_FILE
NOTOP_WEIGHTS_MD5 = "6d6bbae143d832006294945121d1f1fc"  # the hash keras.applications.VGG16 checks
BASE_NAME = "vgg16"
PREPROCESSING_NAME = "preprocessing"


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


def imagenet_weights_file() -> Path:
    """The no-top ImageNet weights, from Keras's cache or downloaded once; a clear error offline."""
    try:
        path = keras.utils.get_file(
            NOTOP_WEIGHTS_FILE, NOTOP_WEIGHTS_URL, cache_subdir="models", file_hash=NOTOP_WEIGHTS_MD5
        )
    except Exception as error:  # get_file raises a bare Exception on URL failures
        raise ValueError(
            f"could not download the ImageNet VGG16 weights ({error}). On a machine without "
            f"network access, supply a local file: fetch {NOTOP_WEIGHTS_FILE} (58 MB) from "
            f"{NOTOP_WEIGHTS_URL} on a connected machine, copy it here, and set "
            f"extract_features.weights in params.yaml to its path (or copy it into "
            f"$KERAS_HOME/models/, by default ~/.keras/models/, and keep weights: imagenet)"
        ) from error
    return Path(path)


def describe_weights(weights: str, seed: int) -> dict:
    """What ``extract_features.weights`` resolves to, for features/meta.json."""
    if weights == "none":
        return {"source": "none", "seed": seed}
    if weights == "imagenet":
        return {"source": "imagenet", "file": NOTOP_WEIGHTS_FILE, "md5": NOTOP_WEIGHTS_MD5}
    path = Path(weights)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"source": "file", "path": str(path), "sha256": digest.hexdigest()}


def load_weights_file(base, path: str | Path) -> None:
    """Load a VGG16 weights file into ``base``; ``ValueError`` naming the file unless every layer loads."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"VGG16 weights file not found: {path} (extract_features.weights must be imagenet, "
            f"none, or the path of a file such as {NOTOP_WEIGHTS_FILE})"
        )
    # NaN sentinels: Keras skips some mismatches silently; any layer the file did not fill stays NaN.
    for variable in base.weights:
        variable.assign(np.full(variable.shape, np.nan, dtype=variable.dtype))
    try:
        base.load_weights(str(path))
    except Exception as error:  # h5py OSError, Keras ValueError, KeyError...
        detail = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        raise ValueError(
            f"could not load VGG16 weights from {path}: not a VGG16 (no-top) weights file, or "
            f"corrupt ({type(error).__name__}: {detail[:400]})"
        ) from error
    missing = [
        layer.name
        for layer in base.layers
        if any(not np.isfinite(np.asarray(weight)).all() for weight in layer.weights)
    ]
    if missing:
        raise ValueError(
            f"VGG16 weights file {path} does not match VGG16's architecture: no weights for "
            f"{', '.join(missing)}"
        )


def build_vgg16_base(image_size: int, weights: str, seed: int):
    """VGG16's convolutional base (no top) with the weights ``extract_features.weights`` names.

    ``none`` seeds Keras right before building, so the random weights are the
    same in every process for a seed (extract_features and finetune agree).
    """
    input_shape = (image_size, image_size, 3)
    if weights == "none":
        keras.utils.set_random_seed(seed)
        base = keras.applications.VGG16(
            include_top=False, weights=None, input_shape=input_shape, name=BASE_NAME
        )
    else:
        path = imagenet_weights_file() if weights == "imagenet" else Path(weights)
        base = keras.applications.VGG16(
            include_top=False, weights=None, input_shape=input_shape, name=BASE_NAME
        )
        load_weights_file(base, path)
    logger.info("VGG16 base (weights: %s) at %dx%d -> %s", weights, image_size, image_size, base.output_shape[1:])
    return base


def feature_shape(image_size: int) -> tuple[int, int, int]:
    """The shape VGG16's base gives for one image (five 2x2 max-pools, floor division)."""
    side = image_size
    for _ in range(5):
        side = math.floor(side / 2)
    return (side, side, 512)


def build_feature_extractor(base, preprocessing: str, image_size: int):
    """Raw [0, 255] images -> preprocessing layer -> VGG16 base: the bottleneck feature model."""
    inputs = keras.Input((image_size, image_size, 3), name="image")
    features = base(ImagePreprocessing(preprocessing, name=PREPROCESSING_NAME)(inputs))
    return keras.Model(inputs, features, name="vgg16_features")
