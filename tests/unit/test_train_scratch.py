"""Tests of the train_scratch stage: the builder, the optimizer schedule, bad input, real runs."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from catsdogs.sources.synthetic import write_split_layout
from tests.conftest import merged, scratch_arguments

SIZE = 32  # tiny images keep every run to seconds on two CPU cores


def make_data(root: Path, train_count: int = 40, validation_count: int = 20) -> None:
    """The generated split layout under root/data/{train,validation}."""
    write_split_layout(root / "data" / "train", train_count, SIZE, seed=1)
    write_split_layout(root / "data" / "validation", validation_count, SIZE, seed=2)


def params_for(root: Path, changes: dict | None = None) -> tuple:
    """The stage's arguments as its main() passes them (tiny images, one epoch), every path under ``root``."""
    return scratch_arguments(root, merged({"common": {"image_size": SIZE, "batch_size": 8},
                                           "recipes": {"tutorial": {"epochs": 1}}}, changes or {}))


@pytest.fixture(autouse=True)
def float32_policy():
    """Leave Keras's global dtype policy as it was found, whatever a test sets."""
    yield
    if "keras" in sys.modules:
        sys.modules["keras"].mixed_precision.set_global_policy("float32")


def test_builder_has_the_tutorial_shapes_and_parameter_count():
    from catsdogs.models.recipes.tutorial import build_scratch_cnn

    model = build_scratch_cnn((150, 150, 3), [32, 32, 64], 64, 0.25, 0.5)  # the tutorial's values
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    # First conv pads ('same'), the others do not: 150 -> 75 -> 73 -> 36 -> 34 -> 17.
    assert shapes["rescale"] == (150, 150, 3)
    assert shapes["conv1"] == (150, 150, 32) and shapes["pool1"] == (75, 75, 32)
    assert shapes["conv2"] == (73, 73, 32) and shapes["pool2"] == (36, 36, 32)
    assert shapes["conv3"] == (34, 34, 64) and shapes["pool3"] == (17, 17, 64)
    assert shapes["flatten"] == (17 * 17 * 64,) and shapes["dense"] == (64,) and shapes["p_dog"] == (1,)
    expected = (
        (3 * 3 * 3 * 32 + 32)  # conv1: 896
        + (3 * 3 * 32 * 32 + 32)  # conv2: 9,248
        + (3 * 3 * 32 * 64 + 64)  # conv3: 18,496
        + (17 * 17 * 64 * 64 + 64)  # dense: 1,183,808
        + (64 + 1)  # p_dog: 65
    )
    assert expected == 1_212_513
    assert model.count_params() == expected
    assert model.layers[-1].activation.__name__ == "sigmoid"
    assert not [layer for layer in model.layers if layer.__class__.__name__.startswith("Random")]


def test_builder_refuses_an_image_size_too_small_for_the_conv_stack():
    from catsdogs.models.recipes.tutorial import build_scratch_cnn, check_image_size

    check_image_size(32, 3)  # 32 -> 16 -> 14 -> 7 -> 5 -> 2: fine
    # Five blocks need 92: 92 -> 46 -> 44 -> 22 -> 20 -> 10 -> 8 -> 4 -> 2 -> 1.
    check_image_size(92, 5)
    with pytest.raises(ValueError, match=r"image_size=91 is too small for 5 conv.*at least 92"):
        check_image_size(91, 5)
    with pytest.raises(ValueError, match=r"image_size=32 is too small for 5 conv.*at least 92"):
        build_scratch_cnn((32, 32, 3), [8, 8, 8, 8, 8], 64, 0.25, 0.5)


def test_schedule_is_the_tutorials_per_step_time_decay():
    from catsdogs.models.recipes.tutorial import make_optimizer, time_decay_schedule

    schedule = time_decay_schedule(0.01, None, epochs=50)  # decay = lr / epochs = 2e-4
    for step in (0, 1, 25, 1000):
        assert float(schedule(step)) == pytest.approx(0.01 / (1 + 2e-4 * step), rel=1e-6)
    assert float(time_decay_schedule(0.1, 0.5, epochs=3)(2)) == pytest.approx(0.1 / 2)
    optimizer = make_optimizer(0.01, 0.9, None, 50)
    assert optimizer.momentum == 0.9


def test_augmentation_changes_images_not_labels_and_can_be_switched_off():
    import tensorflow as tf

    from catsdogs.data.augmentation import augmentation_layers, batch_augmentation

    off = {"shear": 0.0, "zoom": 0.0, "horizontal_flip": False, "rotation": 0.0, "translation": 0.0, "contrast": 0.0}
    tutorial = {**off, "shear": 0.2, "zoom": 0.2, "horizontal_flip": True}
    assert augmentation_layers(**off, seed=1) == []
    assert batch_augmentation(**off, seed=1) is None
    layers = augmentation_layers(**tutorial, seed=1)
    assert [layer.__class__.__name__ for layer in layers] == ["RandomShear", "RandomZoom", "RandomFlip"]
    modern = augmentation_layers(**{**tutorial, "rotation": 0.05, "translation": 0.1, "contrast": 0.2}, seed=1)
    assert [layer.__class__.__name__ for layer in modern][3:] == ["RandomRotation", "RandomTranslation", "RandomContrast"]
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (4, SIZE, SIZE, 3)), tf.float32)
    labels = tf.constant([0.0, 1.0, 0.0, 1.0])
    augmented, same_labels = batch_augmentation(**tutorial, seed=1)(images, labels)
    assert augmented.shape == images.shape and augmented.dtype == tf.float32
    assert not np.allclose(augmented.numpy(), images.numpy())
    assert float(tf.reduce_min(augmented)) >= 0 and float(tf.reduce_max(augmented)) <= 255.001
    np.testing.assert_array_equal(same_labels.numpy(), labels.numpy())


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: [p.unlink() for p in (root / "data/train/dogs").iterdir()], "class folder is empty"),
        (lambda root: shutil.rmtree(root / "data/validation/cats"), "class folder missing"),
        (lambda root: (root / "data/train/cats/cat.0.jpg").write_bytes(b"not an image"),
         r"cannot decode image\(s\): .*cat\.0\.jpg"),
    ],
    ids=["empty-class", "single-class", "unreadable-image"],
)
def test_bad_input_stops_before_training_with_a_clear_error(tmp_path, damage, message):
    from catsdogs.stages.train_scratch import train_scratch

    make_data(tmp_path, train_count=4, validation_count=2)
    damage(tmp_path)
    with pytest.raises(ValueError, match=message):
        train_scratch(*params_for(tmp_path))
    assert not (tmp_path / "models").exists() and not (tmp_path / "reports").exists()


def test_too_small_image_size_for_the_filters_is_refused(tmp_path):
    from catsdogs.stages.train_scratch import train_scratch

    make_data(tmp_path, train_count=2, validation_count=1)
    with pytest.raises(ValueError, match="common.image_size=32 is too small"):
        train_scratch(*params_for(tmp_path, {"recipes": {"tutorial": {"filters": [4, 4, 4, 4, 4]}}}))


