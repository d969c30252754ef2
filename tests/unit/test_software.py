"""The software and hardware record beside a trained model's metrics and the features (catsdogs/models/software.py)."""

from __future__ import annotations

import json
from importlib import metadata

import numpy as np

from catsdogs.models.software import CPU_FLAGS, PACKAGES, cpu_model, software
from catsdogs.train.training import TrainingFiles, save_outputs


def test_the_record_holds_the_installed_versions_the_cpu_and_its_flags(tmp_path):
    record = software(["/physical_device:GPU:0"])
    assert record["python"].count(".") == 2
    assert {name: record[name] for name in ("tensorflow", "keras", "numpy", "dvc")} == {
        name: metadata.version(name) for name in ("tensorflow", "keras", "numpy", "dvc")}
    assert set(PACKAGES) <= set(record) and record["accelerators"] == "/physical_device:GPU:0"
    assert set(record["cpu_flags"].split()) <= set(CPU_FLAGS)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\nflags\t\t: fpu avx2\n")
    assert cpu_model(cpuinfo) == "Some CPU @ 2.0GHz"
    assert software()["accelerators"] == "none"


def test_a_training_stage_s_metrics_carry_the_record(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    files = TrainingFiles(tmp_path, tmp_path, tmp_path / "model.keras", tmp_path / "reports")
    history = {"loss": [0.7], "accuracy": [0.5], "val_loss": [0.69], "val_accuracy": [0.5]}
    save_outputs(model, files, history, {"epochs_run": 1, "best_val_loss": np.float32(0.69)})
    metrics = json.loads((tmp_path / "reports/metrics.json").read_text())
    assert metrics["epochs_run"] == 1 and metrics["software"]["keras"] == metadata.version("keras")
