"""train_top: the pure builder, learning on generated features, outputs, safe-mode reload, bad
features.

The integration tier's share (stages in subprocesses, dvc, training for seconds); the fast
tests, and what the module covers, are in tests/unit/test_train_top.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from catsdogs.models.files import load_model
from catsdogs.stages import train_top as stage
from tests.unit.test_train_top import make_project


@pytest.mark.slow
def test_train_top_learns_writes_outputs_and_reloads_in_safe_mode(tmp_path, monkeypatch):
    project = make_project(tmp_path / "project")
    monkeypatch.chdir(project)
    stage.main()

    metrics = json.loads((project / "reports/top/metrics.json").read_text())
    # The clusters' means are 1 apart in each of 32 unit-variance dimensions: sqrt(32) = 5.7
    # standard deviations apart along the line joining them, so the best possible accuracy is
    # Phi(5.7 / 2) = 99.8 %. Chance is 50 %; 90 % leaves room for 8 short epochs on 160 rows.
    assert metrics["final_val_accuracy"] > 0.9
    assert metrics["epochs_run"] == 8 and metrics["train_count"] == 160 and metrics["validation_count"] == 80
    assert metrics["training_seconds"] > 0
    history = (project / "reports/top/history.csv").read_text().splitlines()
    assert history[0] == "epoch,loss,accuracy,val_loss,val_accuracy" and len(history) == 9
    assert (project / "reports/top/live").is_dir()

    model = load_model(project / "models/top.keras")  # safe mode
    features = np.load(project / "features/validation_features.npy")
    labels = np.load(project / "features/validation_labels.npy")
    predictions = model.predict(features, verbose=0)
    assert predictions.shape == (80, 1)
    assert np.mean((predictions[:, 0] > 0.5) == labels) == pytest.approx(metrics["final_val_accuracy"], abs=1e-6)
