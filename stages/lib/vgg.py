"""VGG16 for the bottleneck stages: its weights, and the one builder of every VGG16 model.

``extract_features.weights`` is ``imagenet`` (Keras downloads the no-top weights
once into ``$KERAS_HOME/models``), ``none`` (random weights, seeded: tests) or the
path of a local weights file (air-gapped machines). A local file is checked:
every VGG16 layer must be loaded from it, else a ``ValueError`` names the file.

Every VGG16 model the pipeline uses (the feature extractor, the bottleneck
classifier applied to images, the fine-tuned model) is assembled by
:func:`vgg16_image_model`: raw RGB [0, 255] pixels -> the preprocessing layer
(:mod:`stages.lib.layers`) -> VGG16's base -> optionally the top classifier.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import keras
import numpy as np

from stages.lib.layers import ImagePreprocessing

logger = logging.getLogger(__name__)

NOTOP_WEIGHTS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
NOTOP_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + NOTOP_WEIGHTS_FILE
NOTOP_WEIGHTS_MD5 = "6d6bbae143d832006294945121d1f1fc"  # the hash keras.applications.VGG16 checks
BASE_NAME = "vgg16"
PREPROCESSING_NAME = "preprocessing"


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


def vgg16_image_model(base, preprocessing: str, image_size: int, top=None, name: str = "vgg16_features"):
    """Raw [0, 255] images -> preprocessing -> VGG16 ``base`` (-> ``top`` classifier -> P(dog)).

    Without ``top``: the bottleneck feature extractor. With it: a classifier of raw
    pixels; ``ValueError`` when ``top`` takes features of another shape than
    ``base`` gives at ``image_size`` (features extracted at another image size).
    """
    if top is not None:
        expected, produced = tuple(top.input_shape[1:]), tuple(base.output_shape[1:])
        if expected != produced:
            raise ValueError(
                f"the top classifier expects features of shape {expected} but VGG16 at "
                f"{image_size}x{image_size} gives {produced}: common.image_size differs from the one "
                f"the features were extracted at (rerun extract_features and train_top)"
            )
    inputs = keras.Input((image_size, image_size, 3), name="image")
    features = base(ImagePreprocessing(preprocessing, name=PREPROCESSING_NAME)(inputs))
    return keras.Model(inputs, features if top is None else top(features), name=name)
