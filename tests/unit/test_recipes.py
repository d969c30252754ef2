"""The scratch CNN's recipes, the early-stopping rule and the chance-level alarm."""

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



def test_the_large_cnn_puts_its_residual_blocks_after_the_first_pool(tmp_path):
    from catsdogs.models.files import load_model
    from catsdogs.models.recipes.large import build_residual_cnn

    model = build_residual_cnn((160, 160, 3), 32, [32, 64, 128, 256], [1, 1, 2, 2], 0.3)
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    assert shapes["stem_conv"] == (80, 80, 32) and shapes["pool1"] == (40, 40, 32)
    assert shapes["stage1_block1_add"] == (40, 40, 32) and shapes["stage4_block2_add"] == (5, 5, 256)
    names = [layer.name for layer in model.layers]
    assert len([name for name in names if name.endswith("_add")]) == 6  # blocks [1, 1, 2, 2]
    # A 1x1 shortcut convolution only where a stage changes the width: stage 1 keeps the stem's 32.
    assert [name for name in names if "shortcut_conv" in name] == [
        "stage2_block1_shortcut_conv", "stage3_block1_shortcut_conv", "stage4_block1_shortcut_conv"]
    assert not [layer for layer in model.layers if layer.__class__.__name__.startswith("Random")]
    assert model.output.shape[1:] == (1,) and model.layers[-1].dtype_policy.name == "float32"
    # Keras' own layers only: it saves and loads back in safe mode with the same outputs.
    model.save(tmp_path / "large.keras")
    images = np.random.default_rng(0).uniform(0, 255, (2, 160, 160, 3)).astype("float32")
    loaded = load_model(tmp_path / "large.keras")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-5)


def test_the_large_recipe_refuses_an_image_too_small_for_its_stages():
    from catsdogs.models.recipes import load_recipe

    recipe = load_recipe("large", {})
    recipe.check(31)  # 16 after the stride-2 stem, 1 after four pools
    with pytest.raises(ValueError, match=r"image_size=30 is too small for the large recipe's 4 stages"):
        recipe.check(30)
    with pytest.raises(ValueError, match=r"image_size=32 is too small for the large recipe's 5 stages"):
        load_recipe("large", {"large": {"filters": [8] * 5, "blocks": [1] * 5}}).check(32)

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


