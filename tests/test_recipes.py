"""The scratch CNN's two recipes, the early-stopping rule and the chance-level alarm."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from catsdogs.core.params import validate_params
from catsdogs.sources.synthetic import write_split_layout

SIZE = 32


def test_the_modern_cnn_has_batch_norm_global_pooling_and_inference_layers_only():
    from catsdogs.models.scratch import build_modern_cnn

    model = build_modern_cnn((150, 150, 3), [32, 64, 128, 256], 0.3)
    names = [layer.__class__.__name__ for layer in model.layers]
    assert names.count("BatchNormalization") == 4 and "GlobalAveragePooling2D" in names and "Flatten" not in names
    assert not [name for name in names if name.startswith("Random")]
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    assert shapes["conv1"] == (75, 75, 32)  # the stride-2 stem
    assert shapes["pool4"] == (4, 4, 256) and shapes["p_dog"] == (1,)
    assert model.count_params() < 0.4 * 1_212_513  # a third of the tutorial's parameters
    with pytest.raises(ValueError, match="image_size=32 is too small for 6 conv"):
        build_modern_cnn((32, 32, 3), [8] * 6, 0.3)


def test_the_modern_schedule_warms_up_then_decays_to_zero():
    from catsdogs.models.scratch import make_modern_optimizer

    optimizer = make_modern_optimizer(0.002, 1e-4, warmup_epochs=2, epochs=10, steps_per_epoch=5)
    schedule = optimizer.learning_rate if callable(optimizer.learning_rate) else optimizer._learning_rate
    rates = [float(schedule(step)) for step in (0, 5, 10, 30, 49)]
    assert rates[0] == pytest.approx(0.0, abs=1e-9)
    assert rates[1] == pytest.approx(0.001, rel=1e-3)  # half-way through the warm-up
    assert rates[2] == pytest.approx(0.002, rel=1e-3)  # the peak
    assert rates[2] > rates[3] > rates[4] > 0 and rates[4] < 0.0001
    assert optimizer.weight_decay == pytest.approx(1e-4)


@pytest.mark.parametrize(
    "accuracy, labels, at_chance",
    [
        (0.5, [0] * 100 + [1] * 100, True),
        (0.55, [0] * 100 + [1] * 100, True),  # 1.4 standard errors above chance: noise
        (0.6, [0] * 100 + [1] * 100, False),  # 2.8 standard errors: it learned something
        (0.7, [0] * 30 + [1] * 70, True),  # always answering "dog" scores 0.7 here
        (0.52, [0] * 2500 + [1] * 2500, False),  # on 5,000 images 2 points are significant
    ],
)
def test_the_chance_check_accounts_for_class_balance_and_sample_size(accuracy, labels, at_chance):
    from catsdogs.train.training import chance_check

    result = chance_check(accuracy, np.array(labels))
    assert result["at_chance"] is at_chance
    assert result["chance_accuracy"] == pytest.approx(max(np.mean(labels), 1 - np.mean(labels)))
    assert chance_check(math.nan, np.array(labels))["at_chance"] is False


def test_a_summary_names_a_model_that_did_not_learn():
    from catsdogs.report.summary import chance_warnings

    lines = chance_warnings({"scratch": {"at_chance": True, "best_val_accuracy": 0.5, "chance_accuracy": 0.5},
                             "top": {"at_chance": False}})
    assert len([line for line in lines if line]) == 1
    assert "Scratch CNN did not learn" in lines[0] and "50.0%" in lines[0]


def arguments(root: Path, changes: dict) -> dict:
    """train_scratch's arguments as main() builds them, every path under ``root``."""
    raw = {"common": {"image_size": SIZE, "batch_size": 8}}
    for section, values in changes.items():
        raw.setdefault(section, {}).update(values)
    params = validate_params(raw)
    return {"train_dir": root / "data/train", "validation_dir": root / "data/validation",
            "model_path": root / "models/scratch.keras", "reports_dir": root / "reports/scratch",
            **params.common.model_dump(), **params.train_scratch.model_dump()}


@pytest.mark.slow
def test_the_modern_recipe_trains_keeps_its_best_epoch_and_says_so(tmp_path):
    from catsdogs.models.files import load_model
    from catsdogs.stages.train_scratch import train_scratch

    write_split_layout(tmp_path / "data/train", 40, SIZE, seed=1)
    write_split_layout(tmp_path / "data/validation", 20, SIZE, seed=2)
    # Batches of 4 for 10 epochs: 200 steps, enough for batch normalisation's moving statistics
    # (momentum 0.99) to catch up with the weights; after 60 steps validation still lags training.
    modern = {"epochs": 10, "filters": [8, 16], "warmup_epochs": 1, "learning_rate": 0.01}
    summary = train_scratch(**arguments(tmp_path, {"common": {"batch_size": 4},
                                                   "train_scratch": {"recipe": "modern", "modern": modern}}))
    assert summary["recipe"] == "modern" and summary["epochs_run"] == 10  # a fixed schedule: no early stop
    metrics = json.loads((tmp_path / "reports/scratch/metrics.json").read_text())
    assert metrics["recipe"] == "modern" and metrics["at_chance"] is False
    assert metrics["best_val_accuracy"] >= 0.8  # the generated classes are easy
    model = load_model(tmp_path / "models/scratch.keras")
    assert model.name == "modern_cnn"
    # The saved weights are the best epoch's: they reproduce its validation loss, not the last epoch's.
    from catsdogs.data.datasets import list_labelled_images, make_image_dataset

    validation = make_image_dataset(*list_labelled_images(tmp_path / "data/validation"), SIZE, 8)
    model.compile(loss="binary_crossentropy", metrics=["accuracy"])
    loss = model.evaluate(validation, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(metrics["best_val_loss"], rel=1e-3)


@pytest.mark.slow
def test_early_stopping_waits_for_start_from_epoch(tmp_path):
    from catsdogs.stages.train_scratch import train_scratch

    write_split_layout(tmp_path / "data/train", 16, SIZE, seed=1)
    write_split_layout(tmp_path / "data/validation", 8, SIZE, seed=2)
    # A learning rate of ~0 keeps validation loss flat: patience 1 alone would stop after epoch 2.
    changes = {"train_scratch": {"epochs": 8, "patience": 1, "start_from_epoch": 5, "learning_rate": 1e-9,
                                 "filters": [4, 4], "dense_units": 4}}
    summary = train_scratch(**arguments(tmp_path, changes))
    assert 6 <= summary["epochs_run"] <= 7


@pytest.mark.slow
def test_a_run_at_chance_warns_or_fails_as_asked(tmp_path, caplog):
    from catsdogs.stages.train_scratch import train_scratch

    write_split_layout(tmp_path / "data/train", 16, SIZE, seed=1)
    write_split_layout(tmp_path / "data/validation", 8, SIZE, seed=2)
    # Validation labels that contradict the pictures: no model can beat chance on them.
    for source, target in (("cats", "dogs"), ("dogs", "cats")):
        for path in sorted((tmp_path / "data/validation" / source).iterdir())[:4]:
            shutil.move(path, tmp_path / "data/validation" / target / f"moved.{path.name}")
    changes = {"train_scratch": {"epochs": 1, "learning_rate": 1e-9, "filters": [4, 4], "dense_units": 4}}
    with caplog.at_level(logging.WARNING, logger="train_scratch"):
        summary = train_scratch(**arguments(tmp_path, changes))
    assert summary["at_chance"] is True
    assert "within noise of chance" in caplog.text and "common.fail_at_chance" in caplog.text
    assert json.loads((tmp_path / "reports/scratch/metrics.json").read_text())["at_chance"] is True
    shutil.rmtree(tmp_path / "models")
    shutil.rmtree(tmp_path / "reports")
    with pytest.raises(ValueError, match="within noise of chance.*fail_at_chance is true"):
        train_scratch(**arguments(tmp_path, {**changes, "common": {"fail_at_chance": True}}))
    assert not (tmp_path / "models").exists() and not (tmp_path / "reports").exists()
