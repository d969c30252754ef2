"""Tiny stand-ins for the pipeline's outputs (models, features, reports), for tests of later stages.

Built here rather than by the training stages, so the evaluate, reports,
submission and CLI tests do not depend on training code or its run time.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import yaml

from catsdogs.sources.synthetic import write_kaggle_test, write_split_layout

IMAGE_SIZE = 32
FEATURE_SHAPE = (2, 2, 8)


def tiny_image_model(seed: int = 0, size: int = IMAGE_SIZE):
    """Raw [0, 255] pixels -> Rescaling -> Conv2D(4) -> pooling -> sigmoid P(dog), like the scratch CNN."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs, name="tiny_image_model")


def mirror_mean(model, images: np.ndarray) -> np.ndarray:
    """What test-time augmentation must give: the mean of the model on the images and on their mirrors."""
    plain = model.predict(images, verbose=0)[:, 0]
    mirrored = model.predict(images[:, :, ::-1, :], verbose=0)[:, 0]
    return (plain + mirrored) / 2


def lambda_image_model(seed: int = 0, size: int = IMAGE_SIZE):
    """An image model with a ``Lambda`` layer (a Python lambda: arbitrary code): safe mode must refuse it."""
    import keras

    inputs = keras.Input((size, size, 3), name="image")
    doubled = keras.layers.Lambda(lambda pixels: pixels * 1.0, name="arbitrary_code")(inputs)
    return keras.Model(inputs, tiny_image_model(seed, size)(doubled), name="lambda_model")


def write_corrupt_model(path: Path) -> None:
    """A ``.keras`` file that is not a Keras archive (a zip signature, then junk)."""
    path.write_bytes(b"PK\x03\x04" + b"not a keras archive" * 20)


def saturated_image_model(bias: float, size: int = IMAGE_SIZE):
    """An image model whose sigmoid output is pinned near 0 or 1 (output bias ``bias``, e.g. +-50)."""
    model = tiny_image_model(0, size)
    dense = model.layers[-1]
    kernel, _ = dense.get_weights()
    dense.set_weights([kernel * 0.0, np.full((1,), bias, dtype=np.float32)])
    return model


def tiny_top_model(seed: int = 1):
    """Features (2, 2, 8) -> Flatten -> sigmoid P(dog): a stand-in for the top classifier."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(FEATURE_SHAPE, name="features")
    outputs = layers.Dense(1, activation="sigmoid")(layers.Flatten()(inputs))
    return keras.Model(inputs, outputs, name="tiny_top")


@functools.cache
def random_vgg16_weights(seed: int = 42) -> Path:
    """A VGG16 weights file with random weights (``weights: none``), written once per test process by
    the weights stage's own code (:func:`catsdogs.stages.weights.prepare_weights`)."""
    from catsdogs.stages.weights import prepare_weights

    folder = Path(tempfile.mkdtemp(prefix="catsdogs-vgg16-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # 59 MB: gone with the test process
    target = folder / "vgg16_notop.weights.h5"
    prepare_weights("none", target, seed=seed, local_dir=folder)
    return target


def link_vgg16_weights(target: Path, seed: int = 42) -> Path:
    """Put the random VGG16 weights file at ``target`` (a hard link where possible: 59 MB each)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(random_vgg16_weights(seed), target)
    except OSError:
        target.write_bytes(random_vgg16_weights(seed).read_bytes())
    return target


def write_history(path: Path, epochs: int) -> None:
    """A history.csv with the training stages' columns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["epoch,loss,accuracy,val_loss,val_accuracy"]
    for epoch in range(1, epochs + 1):
        lines.append(f"{epoch},{1 / epoch:.4f},{0.5 + 0.05 * epoch:.4f},{1.1 / epoch:.4f},{0.45 + 0.05 * epoch:.4f}")
    path.write_text("\n".join(lines) + "\n")


def make_workspace(root: Path, per_class: int = 6, with_test: bool = True, with_vgg16: bool = True) -> Path:
    """A project folder as the pipeline leaves it before evaluate: data, models, features, reports, params.

    Feature rows are written in a shuffled order (with a matching file list), so
    code that assumes the image order would be caught.
    """
    from catsdogs.models.files import save_model
    from tests.conftest import default_params

    write_split_layout(root / "data" / "validation", per_class, IMAGE_SIZE, seed=3)
    write_split_layout(root / "data" / "train", per_class, IMAGE_SIZE, seed=4)
    if with_test:
        write_kaggle_test(root / "data" / "raw" / "test", 5, IMAGE_SIZE, seed=5)
    (root / "models").mkdir()
    save_model(tiny_image_model(0), root / "models" / "scratch.keras")
    save_model(tiny_top_model(1), root / "models" / "top.keras")
    save_model(tiny_image_model(2), root / "models" / "finetune.keras")
    if with_vgg16:  # what the weights stage writes, for the top model stacked on VGG16
        link_vgg16_weights(root / "models" / "vgg16_notop.weights.h5")

    names = [f"cats/cat.{i}.jpg" for i in range(per_class)] + [f"dogs/dog.{i}.jpg" for i in range(per_class)]
    labels = np.array([0] * per_class + [1] * per_class, dtype=np.int32)
    order = np.random.default_rng(0).permutation(len(names))
    features = np.random.default_rng(1).normal(size=(len(names), *FEATURE_SHAPE)).astype(np.float32)
    features_dir = root / "features"
    features_dir.mkdir()
    np.save(features_dir / "validation_features.npy", features[order])
    np.save(features_dir / "validation_labels.npy", labels[order])
    (features_dir / "validation_files.txt").write_text("".join(f"{names[i]}\n" for i in order))

    for name, epochs in (("scratch", 3), ("top", 2), ("finetune", 2)):
        write_history(root / "reports" / name / "history.csv", epochs)
        (root / "reports" / name / "metrics.json").write_text(json.dumps({"epochs_run": epochs}))
    (root / "reports" / "data").mkdir(parents=True)
    split = {
        "train": {"cats": per_class, "dogs": per_class, "total": 2 * per_class},
        "validation": {"cats": per_class, "dogs": per_class, "total": 2 * per_class},
        "files": {"found": 4 * per_class, "dropped": 0, "skipped": 0},
    }
    (root / "reports" / "data" / "split.json").write_text(json.dumps(split))

    params = default_params()
    params["common"]["image_size"] = IMAGE_SIZE
    params["common"]["batch_size"] = 4
    params["vgg16"]["weights"] = "none"
    params["reports"]["worst_images"] = 4
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def features_of(root: Path, name: str) -> np.ndarray:
    """The feature row written for one validation image name (``cats/cat.0.jpg``)."""
    listed = (root / "features" / "validation_files.txt").read_text().splitlines()
    features = np.load(root / "features" / "validation_features.npy")
    return features[listed.index(name)]
