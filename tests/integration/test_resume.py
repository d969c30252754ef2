"""A killed train_scratch or finetune resumes from its last finished epoch; a change of params, data or
code never does.

The integration tier's share (stages in subprocesses, dvc, training for seconds); the fast
tests, and what the module covers, are in tests/unit/test_resume.py.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from catsdogs.sources.synthetic import write_split_layout
from tests.conftest import ROOT
from tests.unit.test_resume import SIZE

EPOCHS = 6

KILL_AFTER = 2  # epochs

PARAMS = {
    "common": {"image_size": SIZE, "batch_size": 4},
    # early stopping watches every epoch but never stops: its state has to survive the kill
    "recipes": {"tutorial": {"epochs": EPOCHS, "start_from_epoch": 0, "patience": 50, "filters": [4, 4, 8],
                             "dense_units": 8}},
}

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "CATSDOGS_LOG_LEVEL": "INFO"}

def snapshots(root: Path, stage: str) -> list[Path]:
    return sorted((root / ".backups").glob(f"{stage}-*/epoch-*"))



def workspace(root: Path) -> Path:
    """Generated split data and params in ``root``: all train_scratch needs."""
    write_split_layout(root / "data/train", 12, SIZE, seed=1)
    write_split_layout(root / "data/validation", 4, SIZE, seed=2)
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    return root


def run_stage(root: Path, stage: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "catsdogs.stages", stage], cwd=root, env=ENV, capture_output=True, text=True,
        timeout=600,
    )


def kill_after_epoch(root: Path, stage: str, epochs_done: int) -> int:
    """Run the stage, SIGKILL it once its backup holds ``epochs_done`` epochs; return the epochs it holds."""
    process = subprocess.Popen(
        [sys.executable, "-m", "catsdogs.stages", stage], cwd=root, env=ENV, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 600
    try:
        while not any(path.name >= f"epoch-{epochs_done:04d}" for path in snapshots(root, stage)):
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, f"no backup after epoch {epochs_done}"
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    done = int(snapshots(root, stage)[-1].name.split("-")[1])
    print(f"{stage} killed after epoch {done}")
    return done


def check_resumed(root: Path, stage: str, reports: str, model_file: str, done: int, epochs: int) -> None:
    """Rerun the killed stage: it resumes after ``done`` epochs, lists each epoch once, writes a valid model."""
    result = run_stage(root, stage)
    assert result.returncode == 0, result.stderr
    assert f"resuming from .backups/{stage}-" in result.stderr and f"{done} epoch(s) done" in result.stderr
    metrics = json.loads((root / reports / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == done
    assert metrics["epochs_run"] == epochs
    with open(root / reports / "history.csv") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["epoch"]) for row in rows] == list(range(1, epochs + 1))  # each epoch once
    assert all(np.isfinite(float(row["val_loss"])) for row in rows)
    assert 1 <= metrics["best_epoch"] <= epochs and 0 <= metrics["best_val_accuracy"] <= 1
    assert not (root / ".backups").exists()  # removed once the outputs are written

    from catsdogs.models.files import load_model

    model = load_model(root / model_file)
    images = np.zeros((2, SIZE, SIZE, 3), dtype="float32")
    assert np.isfinite(model.predict(images, verbose=0)).all()


@pytest.mark.slow
def test_a_killed_train_scratch_resumes_from_its_last_epoch(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    done = kill_after_epoch(root, "train_scratch", KILL_AFTER)
    assert KILL_AFTER <= done < EPOCHS
    assert not (root / "models/scratch.keras").exists()
    check_resumed(root, "train_scratch", "reports/scratch", "models/scratch.keras", done, EPOCHS)

    again = run_stage(root, "train_scratch")  # nothing to resume from: a fresh run says so
    assert again.returncode == 0, again.stderr
    assert "resuming" not in again.stderr
    assert json.loads((root / "reports/scratch/metrics.json").read_text())["resumed_from_epoch"] == 0


@pytest.mark.slow
def test_a_killed_finetune_resumes_from_its_last_epoch(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["common"].update(image_size=SIZE, batch_size=8)
    params["vgg16"]["weights"] = "none"
    params["train_top"].update(epochs=2, batch_size=8, units=[8], dropouts=[0.2])
    params["finetune"].update(epochs=4, patience=50)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("weights", "extract_features", "train_top"):
        result = run_stage(root, stage)
        assert result.returncode == 0, result.stderr
    done = kill_after_epoch(root, "finetune", 1)
    assert 1 <= done < 4
    check_resumed(root, "finetune", "reports/finetune", "models/finetune.keras", done, 4)
