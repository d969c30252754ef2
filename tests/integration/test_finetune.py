"""finetune: a tiny real run (32 px, weights none), the epochs-0 path, freezing, bad params.

The integration tier's share (stages in subprocesses, dvc, training for seconds); the fast
tests, and what the module covers, are in tests/unit/test_finetune.py.
"""

from __future__ import annotations

import json
import sys

import keras
import numpy as np
import pytest

from catsdogs.models import vgg
from catsdogs.models.files import load_model
from catsdogs.stages import finetune
from tests.conftest import run
from tests.unit.test_finetune import SIZE, project, set_params, trained_top, validation_images  # noqa: F401  (fixtures)


@pytest.mark.slow
def test_two_epochs_write_a_model_that_reloads_and_predicts_on_raw_pixels(project):  # noqa: F811
    set_params(project, {"epochs": 2, "patience": 3})
    finetune.main()

    metrics = json.loads((project / "reports/finetune/metrics.json").read_text())
    assert metrics["skipped"] is False and metrics["epochs_run"] == 2
    assert metrics["trainable_from"] == "block5_conv1" and metrics["train_count"] == 16
    for key in ("initial_val_loss", "initial_val_accuracy", "best_val_loss", "final_val_accuracy", "training_seconds"):
        assert np.isfinite(metrics[key]), key
    # block5 (3 convolutions of 3x3x512x512 + 512) and the top classifier (512*16+16 + 16+1)
    assert metrics["trainable_parameters"] == 3 * (3 * 3 * 512 * 512 + 512) + 512 * 16 + 16 + 17
    history = (project / "reports/finetune/history.csv").read_text().splitlines()
    assert history[0] == "epoch,loss,accuracy,val_loss,val_accuracy" and len(history) == 3

    model = load_model(project / "models/finetune.keras")  # safe mode
    images = validation_images(project)
    predictions = model.predict(images, verbose=0)
    assert predictions.shape == (8, 1) and ((predictions >= 0) & (predictions <= 1)).all()
    # Frozen below block5: block1-4 kept the seeded random weights extract_features used.
    reference = vgg.build_vgg16_base(SIZE, project / "models/vgg16_notop.weights.h5")
    trained_base = model.get_layer(vgg.BASE_NAME)
    for name in ("block1_conv1", "block4_conv3"):
        for got, expected in zip(trained_base.get_layer(name).get_weights(), reference.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, expected)
    assert not np.allclose(
        trained_base.get_layer("block5_conv1").get_weights()[0], reference.get_layer("block5_conv1").get_weights()[0]
    )

    # A fresh process that imports only the shared loader (as evaluate does) reloads it in safe mode.
    code = (
        "import numpy as np; from catsdogs.models.files import load_model; "
        "model = load_model('models/finetune.keras'); "
        f"print(model.predict(np.full((1, {SIZE}, {SIZE}, 3), 128, 'float32'), verbose=0).shape)"
    )
    assert run([sys.executable, "-c", code], project).stdout.strip().endswith("(1, 1)")


@pytest.mark.slow
def test_mixed_precision_fine_tuning_runs_and_reloads(project):  # noqa: F811
    set_params(project, {"epochs": 1}, runtime={"mixed_precision": True})
    finetune.main()
    keras.mixed_precision.set_global_policy("float32")
    metrics = json.loads((project / "reports/finetune/metrics.json").read_text())
    assert metrics["dtype_policy"] == "mixed_bfloat16" and np.isfinite(metrics["final_val_loss"])
    predictions = load_model(project / "models/finetune.keras").predict(validation_images(project), verbose=0)
    assert predictions.dtype == np.float32 and predictions.shape == (8, 1)
