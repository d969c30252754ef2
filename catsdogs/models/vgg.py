"""VGG16 for the bottleneck stages: its weights, and the one builder of every VGG16 model.

The weights stage (:mod:`catsdogs.stages.weights`) turns ``vgg16.weights`` into one
file, ``paths.vgg16_weights``, in Keras's weights format: ``imagenet`` (Keras downloads
the no-top weights once into ``$KERAS_HOME/models`` and checks their MD5), ``none``
(random weights, seeded: tests, offline runs) or a local weights file inside
``paths.local_weights``. Every later stage builds VGG16 from that file
(:func:`build_vgg16_base`), so the weights are tracked by content and travel with
``dvc push`` / ``dvc pull``. A weights file is checked when loaded: every VGG16
layer must be loaded from it, else a ``ValueError`` names the file.

Every VGG16 model the pipeline uses (the feature extractor, the bottleneck
classifier applied to images, the fine-tuned model) is assembled by
:func:`vgg16_image_model`: raw RGB [0, 255] pixels -> the preprocessing layer
(:mod:`catsdogs.models.layers`) -> VGG16's base -> optionally the top classifier.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np

from catsdogs.core.io import file_hash
from catsdogs.models.layers import ImagePreprocessing

logger = logging.getLogger(__name__)

NOTOP_WEIGHTS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
NOTOP_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + NOTOP_WEIGHTS_FILE
NOTOP_WEIGHTS_MD5 = "6d6bbae143d832006294945121d1f1fc"  # the hash keras.applications.VGG16 checks
BASE_NAME = "vgg16"
PREPROCESSING_NAME = "preprocessing"
SOURCE_IMAGE_SIZE = 32  # any size: the base's weights do not depend on it


def imagenet_weights_file() -> Path:
    """The no-top ImageNet weights, from Keras's cache or downloaded once; a clear error offline."""
    try:
        path = keras.utils.get_file(
            NOTOP_WEIGHTS_FILE, NOTOP_WEIGHTS_URL, cache_subdir="models", file_hash=NOTOP_WEIGHTS_MD5
        )
    except Exception as error:  # get_file raises a bare Exception on URL failures
        raise ValueError(
            f"could not download the ImageNet VGG16 weights ({error}). On a machine without "
            f"network access, `dvc pull weights` brings them from the project's remote if a "
            f"connected machine pushed them; else fetch {NOTOP_WEIGHTS_FILE} (58 MB) from "
            f"{NOTOP_WEIGHTS_URL}, copy it into weights/ and set vgg16.weights: "
            f"weights/{NOTOP_WEIGHTS_FILE} in params.yaml (or copy it into $KERAS_HOME/models/, "
            f"by default ~/.keras/models/, and keep weights: imagenet)"
        ) from error
    return Path(path)


def describe_weights(path: str | Path) -> dict:
    """The weights file a stage built VGG16 from, for its metadata: name and SHA-256."""
    return {"file": Path(path).name, "sha256": file_hash(path)}


def load_weights_file(base, path: str | Path) -> None:
    """Load a VGG16 weights file into ``base``; ``ValueError`` naming the file unless every layer loads."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"VGG16 weights file not found: {path} (the weights stage writes it: run `dvc repro weights`, "
            f"or `dvc pull` it from the project's remote)"
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


def vgg16_base(image_size: int):
    """VGG16's convolutional base (no top) at ``image_size``, weights not loaded (Keras's random init).

    Its input is named, not numbered by Keras (``input_layer_3``), so a weights file
    saved from it is byte-identical in every process and at every call.
    """
    inputs = keras.Input((image_size, image_size, 3), name=f"{BASE_NAME}_input")
    return keras.applications.VGG16(include_top=False, weights=None, input_tensor=inputs, name=BASE_NAME)


def local_weights_file(source: str, local_dir: str | Path) -> Path:
    """``source`` as a local weights file; ``ValueError`` unless it lies inside ``local_dir``.

    Only files inside that folder (a dependency of the weights stage in dvc.yaml) are
    tracked by content: a file replaced at the same path elsewhere would go unnoticed.
    """
    path, folder = Path(source), Path(local_dir)
    if not path.resolve().is_relative_to(folder.resolve()):
        raise ValueError(
            f"vgg16.weights ({source}) must be imagenet, none, or a weights file inside "
            f"{folder}/ (paths.local_weights): copy the file there and name it so, e.g. "
            f"weights: {folder.as_posix()}/{NOTOP_WEIGHTS_FILE}. DVC tracks that folder's content, so "
            f"replacing the file reruns the stages that use it"
        )
    if not path.is_file():
        raise ValueError(
            f"VGG16 weights file not found: {path} (vgg16.weights must be imagenet, "
            f"none, or the path of a file such as {folder.as_posix()}/{NOTOP_WEIGHTS_FILE})"
        )
    return path


def base_from_source(source: str, seed: int, local_dir: str | Path):
    """VGG16's base with the weights ``vgg16.weights`` names (the weights stage).

    ``none`` seeds Keras right before building, so the random weights are the same in
    every process for a seed. The image size does not matter: VGG16's base has the
    same weights at every input size.
    """
    if source == "none":
        keras.utils.set_random_seed(seed)
        return vgg16_base(SOURCE_IMAGE_SIZE)
    path = imagenet_weights_file() if source == "imagenet" else local_weights_file(source, local_dir)
    base = vgg16_base(SOURCE_IMAGE_SIZE)
    load_weights_file(base, path)
    return base


def build_vgg16_base(image_size: int, weights_file: str | Path):
    """VGG16's base at ``image_size`` with the weights in ``weights_file`` (paths.vgg16_weights)."""
    base = vgg16_base(image_size)
    load_weights_file(base, weights_file)
    logger.info("VGG16 base (weights: %s) at %dx%d -> %s", weights_file, image_size, image_size, base.output_shape[1:])
    return base


def built_on_vgg16(model) -> bool:
    """True when ``model`` holds the VGG16 base (the fine-tuned model, the top classifier stacked on it)."""
    return any(layer.name == BASE_NAME for layer in model.layers)


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
