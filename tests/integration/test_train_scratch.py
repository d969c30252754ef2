"""Tests of the train_scratch stage: the builder, the optimizer schedule, bad input, real runs.

The integration tier's share (stages in subprocesses, dvc, training for seconds); the fast
tests, and what the module covers, are in tests/unit/test_train_scratch.py.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import default_params, merged, run, update_params
from tests.unit.test_train_scratch import SIZE, make_data, params_for

# Small but learnable: 40 images per class to train, 20 to validate, batch 8 (10 steps an epoch).
RUN_PARAMS = {
    "common": {"image_size": SIZE, "batch_size": 8},
    "recipes": {"tutorial": {"epochs": 12, "patience": 3}},
}



def write_params(directory: Path, changes: dict) -> None:
    """A params.yaml in ``directory``: the shipped one with ``changes`` deep-merged in."""
    (directory / "params.yaml").write_text(yaml.safe_dump(merged(default_params(), changes), sort_keys=False))


@pytest.mark.slow
def test_stage_learns_writes_every_output_and_the_model_reloads(tmp_path):
    from catsdogs.data.datasets import list_labelled_images, make_image_dataset
    from catsdogs.models.files import load_model

    make_data(tmp_path)
    # Deterministic (seeded augmentation, shuffling and ops): the accuracy bound below cannot flake. In a
    # subprocess: TensorFlow's op determinism, once on, stays on for the rest of a process.
    write_params(tmp_path, {**RUN_PARAMS, "runtime": {"deterministic": True}})
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
    params = params_for(tmp_path, {"train_scratch": {"cache": "none"}, "recipes": {"tutorial": {
        "epochs": 20, "patience": 1, "start_from_epoch": 0, "learning_rate": 0.05}}})
    summary = train_scratch(*params)
    assert summary["epochs_run"] < 20
    assert summary["epochs_run"] == summary["best_epoch"] + 1  # stopped `patience` epochs after the best


@pytest.mark.slow
def test_mixed_precision_keeps_a_float32_output(tmp_path):
    import keras

    from catsdogs.models.files import load_model
    from catsdogs.stages.train_scratch import train_scratch

    make_data(tmp_path, train_count=8, validation_count=4)
    train_scratch(*params_for(tmp_path, {"runtime": {"mixed_precision": True}}))
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"  # CPU: bfloat16
    keras.mixed_precision.set_global_policy("float32")
    model = load_model(tmp_path / "models/scratch.keras")
    assert model.get_layer("conv1").dtype_policy.name == "mixed_bfloat16"
    output = model(np.zeros((2, SIZE, SIZE, 3), np.float32))
    assert output.dtype == "float32"


@pytest.mark.slow
def test_an_image_unreadable_outside_the_checked_sample_is_named(tmp_path, monkeypatch):
    from catsdogs.stages import train_scratch as stage

    make_data(tmp_path, train_count=4, validation_count=2)
    (tmp_path / "data/train/dogs/dog.2.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    monkeypatch.setattr(stage, "CHECKED_PER_CLASS", 1)  # the sample holds only dog.0
    with pytest.raises(ValueError, match=r"cannot decode image\(s\): .*dog\.2\.jpg"):
        stage.train_scratch(*params_for(tmp_path))


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
        train_scratch(*params_for(tmp_path))
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
    update_params(dvc_repo, {"common": {"image_size": SIZE, "batch_size": 8}, "recipes": {"tutorial": {"epochs": 2}}})
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
            "common": {"image_size": SIZE, "batch_size": 4},
            "runtime": {"deterministic": True},
            "recipes": {"tutorial": {"epochs": 2}},
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
