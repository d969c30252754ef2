"""Tests of the train_scratch stage: the builder, the optimizer schedule, bad input, real runs."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from catsdogs.core.params import validate_params
from catsdogs.sources.synthetic import write_split_layout
from tests.conftest import run, update_params

SIZE = 32  # tiny images keep every run to seconds on two CPU cores
# Small but learnable: 40 images per class to train, 20 to validate, batch 8 (10 steps an epoch).
RUN_PARAMS = {
    "common": {"image_size": SIZE, "batch_size": 8},
    "train_scratch": {"epochs": 12, "patience": 3},
}


def write_params(directory: Path, changes: dict) -> None:
    """A params.yaml in ``directory`` holding only ``changes`` (the rest: the defaults)."""
    (directory / "params.yaml").write_text(yaml.safe_dump(changes))


def make_data(root: Path, train_count: int = 40, validation_count: int = 20) -> None:
    """The generated split layout under root/data/{train,validation}."""
    write_split_layout(root / "data" / "train", train_count, SIZE, seed=1)
    write_split_layout(root / "data" / "validation", validation_count, SIZE, seed=2)


def params_for(root: Path, changes: dict | None = None) -> dict:
    """The stage's arguments as its main() passes them: validated params, every path under ``root``."""
    raw = {"common": {"image_size": SIZE, "batch_size": 8}, "train_scratch": {"epochs": 1}}
    for section, values in (changes or {}).items():
        raw.setdefault(section, {}).update(values)
    params = validate_params(raw)
    paths = params.paths
    return {
        "train_dir": root / paths.train,
        "validation_dir": root / paths.validation,
        "model_path": root / paths.scratch_model,
        "reports_dir": root / paths.scratch_reports,
        **params.common.model_dump(),
        **params.train_scratch.model_dump(),
    }


@pytest.fixture(autouse=True)
def float32_policy():
    """Leave Keras's global dtype policy as it was found, whatever a test sets."""
    yield
    if "keras" in sys.modules:
        sys.modules["keras"].mixed_precision.set_global_policy("float32")


def test_builder_has_the_tutorial_shapes_and_parameter_count():
    from catsdogs.models.scratch import build_scratch_cnn

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
    from catsdogs.models.scratch import build_scratch_cnn, check_image_size

    check_image_size(32, 3)  # 32 -> 16 -> 14 -> 7 -> 5 -> 2: fine
    # Five blocks need 92: 92 -> 46 -> 44 -> 22 -> 20 -> 10 -> 8 -> 4 -> 2 -> 1.
    check_image_size(92, 5)
    with pytest.raises(ValueError, match=r"image_size=91 is too small for 5 conv.*at least 92"):
        check_image_size(91, 5)
    with pytest.raises(ValueError, match=r"image_size=32 is too small for 5 conv.*at least 92"):
        build_scratch_cnn((32, 32, 3), [8, 8, 8, 8, 8], 64, 0.25, 0.5)


def test_schedule_is_the_tutorials_per_step_time_decay():
    from catsdogs.models.scratch import make_optimizer, time_decay_schedule

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


@pytest.mark.slow
def test_stage_learns_writes_every_output_and_the_model_reloads(tmp_path):
    from catsdogs.data.datasets import list_labelled_images, make_image_dataset
    from catsdogs.models.files import load_model

    make_data(tmp_path)
    # Deterministic (seeded augmentation, shuffling and ops): the accuracy bound below cannot flake. In a
    # subprocess: TensorFlow's op determinism, once on, stays on for the rest of a process.
    write_params(tmp_path, {**RUN_PARAMS, "common": {**RUN_PARAMS["common"], "deterministic": True}})
    run(["python", "-m", "catsdogs.stages", "train_scratch"], cwd=tmp_path)

    metrics = json.loads((tmp_path / "reports/scratch/metrics.json").read_text())
    # 40 validation images, chance 0.5: P(>= 32 right by luck) ~ 1e-4. The synthetic classes differ in
    # tint and shape, and this configuration reaches 0.9-1.0 by epoch 8-12; 0.8 leaves room for noise.
    assert metrics["best_val_accuracy"] >= 0.8
    assert metrics["train_count"] == 80 and metrics["validation_count"] == 40
    assert 1 <= metrics["best_epoch"] <= metrics["epochs_run"] <= 12
    assert metrics["images_per_second"] > 0 and metrics["training_seconds"] > 0
    history = (tmp_path / "reports/scratch/history.csv").read_text().splitlines()
    assert history[0] == "epoch,loss,accuracy,val_loss,val_accuracy"
    assert len(history) == 1 + metrics["epochs_run"]
    assert (tmp_path / "reports/scratch/live/metrics.json").is_file()

    model = load_model(tmp_path / "models/scratch.keras")  # safe mode
    paths, labels = list_labelled_images(tmp_path / "data/validation")
    probabilities = model.predict(make_image_dataset(paths, None, SIZE, 16), verbose=0)
    assert probabilities.shape == (40, 1) and probabilities.dtype == np.float32
    assert ((probabilities > 0.5)[:, 0] == labels).mean() == pytest.approx(metrics["best_val_accuracy"])
    assert list(tmp_path.glob("models/.*")) == []  # no temporary leftovers


@pytest.mark.slow
def test_early_stopping_ends_a_run_whose_validation_loss_stops_improving(tmp_path):
    from catsdogs.stages.train_scratch import train_scratch

    make_data(tmp_path, train_count=24, validation_count=16)
    # Random labels: move a seeded random half of each class folder into the other one, so
    # validation loss cannot keep improving; with a high learning rate the model overfits fast.
    rng = np.random.default_rng(0)
    for split in ("train", "validation"):
        for source, target in (("cats", "dogs"), ("dogs", "cats")):
            files = sorted((tmp_path / "data" / split / source).glob(f"{source[:-1]}.*"))
            for path in rng.choice(files, size=len(files) // 2, replace=False):
                shutil.move(path, tmp_path / "data" / split / target / path.name)
    params = params_for(tmp_path, {"train_scratch": {
        "epochs": 20, "patience": 1, "start_from_epoch": 0, "learning_rate": 0.05, "cache": "none"}})
    summary = train_scratch(**params)
    assert summary["epochs_run"] < 20
    assert summary["epochs_run"] == summary["best_epoch"] + 1  # stopped `patience` epochs after the best


@pytest.mark.slow
def test_mixed_precision_keeps_a_float32_output(tmp_path):
    import keras

    from catsdogs.models.files import load_model
    from catsdogs.stages.train_scratch import train_scratch

    make_data(tmp_path, train_count=8, validation_count=4)
    train_scratch(**params_for(tmp_path, {"train_scratch": {"epochs": 1, "mixed_precision": True}}))
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"  # CPU: bfloat16
    keras.mixed_precision.set_global_policy("float32")
    model = load_model(tmp_path / "models/scratch.keras")
    assert model.get_layer("conv1").dtype_policy.name == "mixed_bfloat16"
    output = model(np.zeros((2, SIZE, SIZE, 3), np.float32))
    assert output.dtype == "float32"


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
        train_scratch(**params_for(tmp_path))
    assert not (tmp_path / "models").exists() and not (tmp_path / "reports").exists()


def test_too_small_image_size_for_the_filters_is_refused(tmp_path):
    from catsdogs.stages.train_scratch import train_scratch

    make_data(tmp_path, train_count=2, validation_count=1)
    with pytest.raises(ValueError, match="common.image_size=32 is too small"):
        train_scratch(**params_for(tmp_path, {"train_scratch": {"filters": [4, 4, 4, 4, 4]}}))


@pytest.mark.slow
def test_an_image_unreadable_outside_the_checked_sample_is_named(tmp_path, monkeypatch):
    from catsdogs.stages import train_scratch as stage

    make_data(tmp_path, train_count=4, validation_count=2)
    (tmp_path / "data/train/dogs/dog.2.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    monkeypatch.setattr(stage, "CHECKED_PER_CLASS", 1)  # the sample holds only dog.0
    with pytest.raises(ValueError, match=r"cannot decode image\(s\): .*dog\.2\.jpg"):
        stage.train_scratch(**params_for(tmp_path))


@pytest.mark.slow
def test_a_failed_save_leaves_no_partial_model(tmp_path, monkeypatch):
    import keras

    from catsdogs.stages.train_scratch import train_scratch

    make_data(tmp_path, train_count=4, validation_count=2)

    def half_save(self, filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", half_save)
    with pytest.raises(OSError, match="could not save the model"):
        train_scratch(**params_for(tmp_path))
    assert list((tmp_path / "models").iterdir()) == []
    assert not (tmp_path / "reports/scratch/metrics.json").exists()


def test_command_line_reports_bad_input_in_one_line(tmp_path):
    make_data(tmp_path, train_count=2, validation_count=1)
    shutil.rmtree(tmp_path / "data/train/dogs")
    write_params(tmp_path, RUN_PARAMS)
    result = run(["python", "-m", "catsdogs.stages", "train_scratch"], cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert "train_scratch failed: class folder missing" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_dvc_repro_runs_the_stage(dvc_repo):
    from catsdogs.core.manifest import write_manifest

    make_data(dvc_repo, train_count=8, validation_count=4)
    # What split writes beside its folders: the stage's data dependency (dvc.yaml) is their manifest.
    with contextlib.chdir(dvc_repo):
        write_manifest("data/split.manifest.json", {"data/train": "data/train", "data/validation": "data/validation"})
    update_params(dvc_repo, {"common": {"image_size": SIZE, "batch_size": 8}, "train_scratch": {"epochs": 2}})
    run(["dvc", "repro", "--single-item", "train_scratch"], cwd=dvc_repo)
    assert (dvc_repo / "models/scratch.keras").is_file()
    shown = run(["dvc", "metrics", "show", "--json"], cwd=dvc_repo).stdout
    assert "best_val_accuracy" in shown
    assert "train_scratch" in (dvc_repo / "dvc.lock").read_text()


@pytest.mark.slow
def test_deterministic_runs_are_bit_identical_across_processes(tmp_path):
    from catsdogs.models.files import load_model

    make_data(tmp_path, train_count=8, validation_count=4)
    for run_name in ("first", "second"):
        write_params(tmp_path, {
            "common": {"image_size": SIZE, "batch_size": 4, "deterministic": True},
            "train_scratch": {"epochs": 2},
            "paths": {"scratch_model": f"models/{run_name}.keras", "scratch_reports": f"reports/{run_name}"},
        })
        run(["python", "-m", "catsdogs.stages", "train_scratch"], cwd=tmp_path)
    first_model = load_model(tmp_path / "models/first.keras")
    first, second = first_model.get_weights(), load_model(tmp_path / "models/second.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    # Training moved the weights: Keras starts every bias (and BatchNorm's beta and moving mean) at zero.
    started_at_zero = {
        f"{layer.name}.{variable.name}": np.asarray(variable.numpy())
        for layer in first_model.layers for variable in layer.weights
        if variable.name in ("bias", "beta", "moving_mean")
    }
    assert started_at_zero
    for name, value in started_at_zero.items():
        assert np.any(value != 0), f"{name} is still at its initial zeros: training changed nothing"
    assert (tmp_path / "reports/first/history.csv").read_text() == (tmp_path / "reports/second/history.csv").read_text()
