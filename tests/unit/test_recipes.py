"""The scratch CNN's two recipes, the early-stopping rule and the chance-level alarm."""

from __future__ import annotations

import math

import numpy as np
import pytest


def test_the_modern_cnn_has_batch_norm_global_pooling_and_inference_layers_only():
    from catsdogs.models.recipes.modern import build_modern_cnn

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
    from catsdogs.models.recipes.modern import make_modern_optimizer

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


