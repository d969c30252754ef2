"""The scratch CNN's recipes, the early-stopping rule and the chance-level alarm.

The integration tier's share (stages in subprocesses, dvc, training for seconds); the fast
tests, and what the module covers, are in tests/unit/test_recipes.py.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from catsdogs.sources.synthetic import write_split_layout
from tests.conftest import merged, scratch_arguments

SIZE = 32



def arguments(root: Path, changes: dict) -> tuple:
    """train_scratch's arguments as main() builds them (tiny images), every path under ``root``."""
    return scratch_arguments(root, merged({"common": {"image_size": SIZE, "batch_size": 8}}, changes))


@pytest.mark.slow
def test_the_modern_recipe_trains_keeps_its_best_epoch_and_says_so(tmp_path):
    from catsdogs.models.files import load_model
    from catsdogs.stages.train_scratch import train_scratch

    write_split_layout(tmp_path / "data/train", 40, SIZE, seed=1)
    write_split_layout(tmp_path / "data/validation", 20, SIZE, seed=2)
    # Batches of 4 for 10 epochs: 200 steps, enough for batch normalisation's moving statistics
    # (momentum 0.99) to catch up with the weights; after 60 steps validation still lags training.
    modern = {"epochs": 10, "filters": [8, 16], "warmup_epochs": 1, "learning_rate": 0.01}
    summary = train_scratch(*arguments(tmp_path, {"common": {"batch_size": 4}, "train_scratch": {"recipe": "modern"},
                                                  "recipes": {"modern": modern}}))
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
def test_the_large_recipe_trains_through_the_stage_and_loads_back_in_safe_mode(tmp_path):
    from catsdogs.models.files import load_model
    from catsdogs.stages.train_scratch import train_scratch

    write_split_layout(tmp_path / "data/train", 24, SIZE, seed=1)
    write_split_layout(tmp_path / "data/validation", 8, SIZE, seed=2)
    large = {"epochs": 3, "stem": 8, "filters": [8, 16], "blocks": [1, 2], "warmup_epochs": 1}
    summary = train_scratch(*arguments(tmp_path, {"train_scratch": {"recipe": "large", "cache": "none"},
                                                  "recipes": {"large": large}}))
    assert summary["recipe"] == "large" and summary["epochs_run"] == 3  # a fixed schedule, like modern's
    metrics = json.loads((tmp_path / "reports/scratch/metrics.json").read_text())
    assert metrics["recipe"] == "large" and metrics["parameters"] == summary["parameters"]
    model = load_model(tmp_path / "models/scratch.keras")
    assert model.name == "residual_cnn" and model.count_params() == summary["parameters"]
    assert len([layer for layer in model.layers if layer.name.endswith("_add")]) == 3

@pytest.mark.slow
def test_early_stopping_waits_for_start_from_epoch(tmp_path):
    from catsdogs.stages.train_scratch import train_scratch

    write_split_layout(tmp_path / "data/train", 16, SIZE, seed=1)
    write_split_layout(tmp_path / "data/validation", 8, SIZE, seed=2)
    # A learning rate of ~0 keeps validation loss flat: patience 1 alone would stop after epoch 2.
    changes = {"recipes": {"tutorial": {"epochs": 8, "patience": 1, "start_from_epoch": 5, "learning_rate": 1e-9,
                                        "filters": [4, 4], "dense_units": 4}}}
    summary = train_scratch(*arguments(tmp_path, changes))
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
    changes = {"recipes": {"tutorial": {"epochs": 1, "learning_rate": 1e-9, "filters": [4, 4], "dense_units": 4}}}
    with caplog.at_level(logging.WARNING, logger="train_scratch"):
        summary = train_scratch(*arguments(tmp_path, changes))
    assert summary["at_chance"] is True
    assert "within noise of chance" in caplog.text and "common.fail_at_chance" in caplog.text
    assert json.loads((tmp_path / "reports/scratch/metrics.json").read_text())["at_chance"] is True
    shutil.rmtree(tmp_path / "models")
    shutil.rmtree(tmp_path / "reports")
    with pytest.raises(ValueError, match="within noise of chance.*fail_at_chance is true"):
        train_scratch(*arguments(tmp_path, {**changes, "common": {"fail_at_chance": True}}))
    assert not (tmp_path / "models").exists() and not (tmp_path / "reports").exists()
