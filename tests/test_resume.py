"""A killed train_scratch or finetune resumes from its last finished epoch; a change of params, data or code
never does."""

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

from catsdogs.train.resume import Backup, backup_key
from catsdogs.sources.synthetic import write_split_layout
from tests.conftest import ROOT

SIZE = 32
EPOCHS = 6
KILL_AFTER = 2  # epochs
PARAMS = {
    "common": {"image_size": SIZE, "batch_size": 4},
    # early stopping watches every epoch but never stops: its state has to survive the kill
    "train_scratch": {"epochs": EPOCHS, "start_from_epoch": 0, "patience": 50, "filters": [4, 4, 8],
                      "dense_units": 8},
}
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "CATSDOGS_LOG_LEVEL": "INFO"}


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


def snapshots(root: Path, stage: str) -> list[Path]:
    return sorted((root / ".backups").glob(f"{stage}-*/epoch-*"))


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
    params["extract_features"]["weights"] = "none"
    params["train_top"].update(epochs=2, batch_size=8, units=[8], dropouts=[0.2])
    params["finetune"].update(epochs=4, patience=50)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("weights", "extract_features", "train_top"):
        result = run_stage(root, stage)
        assert result.returncode == 0, result.stderr
    done = kill_after_epoch(root, "finetune", 1)
    assert 1 <= done < 4
    check_resumed(root, "finetune", "reports/finetune", "models/finetune.keras", done, 4)


def test_a_change_of_params_data_or_code_never_resumes_a_stale_backup(tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "data"
    write_split_layout(data / "train", 2, SIZE, seed=1)
    params = {"epochs": 3, "learning_rate": 0.01}
    key = backup_key("train_scratch", params, [data / "train"])
    assert backup_key("train_scratch", dict(params), [data / "train"]) == key
    assert backup_key("train_scratch", {**params, "learning_rate": 0.02}, [data / "train"]) != key
    assert backup_key("finetune", params, [data / "train"]) != key
    image = sorted((data / "train/cats").iterdir())[0]
    original = image.read_bytes()
    image.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # one bit of one image
    assert backup_key("train_scratch", params, [data / "train"]) != key
    image.write_bytes(original)
    code = tmp_path / "stages"
    (code / "lib").mkdir(parents=True)
    (code / "lib/model.py").write_text("LAYERS = 3\n")
    monkeypatch.setattr("catsdogs.train.resume.CODE_ROOT", code)
    before = backup_key("train_scratch", params, [data / "train"])
    (code / "lib/model.py").write_text("LAYERS = 4\n")
    assert backup_key("train_scratch", params, [data / "train"]) != before

    stale = Backup(tmp_path / "backups", "train_scratch", "0" * 16)
    (stale.folder / "epoch-0002").mkdir(parents=True)
    other_stage = tmp_path / "backups/finetune-1234"
    other_stage.mkdir()
    current = Backup(tmp_path / "backups", "train_scratch", key)
    current.remove_stale()
    assert not stale.folder.exists() and other_stage.is_dir()
    assert current.latest() is None


def test_the_backup_restores_weights_optimizer_state_history_and_early_stopping(tmp_path: Path) -> None:
    import keras

    from catsdogs.train.resume import backup_callback

    def model_and_stopping():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="binary_crossentropy")
        stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=50, restore_best_weights=True)
        return model, stopping

    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    backup = Backup(tmp_path / "backups", "train_scratch", "k" * 16)
    model, stopping = model_and_stopping()
    first = backup_callback(backup, stopping)
    model.fit(x, y, validation_data=(x, y), epochs=3, batch_size=4, callbacks=[stopping, first], verbose=0)
    saved_weights = [w.copy() for w in model.get_weights()]
    saved_best = (stopping.best, stopping.best_epoch, stopping.wait)
    best_weights = [w.copy() for w in stopping.best_weights]
    assert [path.name for path in backup.snapshots()] == ["epoch-0003"]  # older epochs dropped

    model, stopping = model_and_stopping()  # a fresh process: other initial weights, a new optimizer
    second = backup_callback(backup, stopping)
    assert (second.resumed_from_epoch, second.stopped) == (3, False)
    seen = {}

    class Peek(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["weights"] = [w.copy() for w in self.model.get_weights()]
            seen["iterations"] = int(self.model.optimizer.iterations.numpy())
            seen["stopping"] = (stopping.best, stopping.best_epoch, stopping.wait)
            seen["best_weights"] = stopping.best_weights

    model.fit(x, y, validation_data=(x, y), epochs=3, initial_epoch=3, batch_size=4,
              callbacks=[stopping, second, Peek()], verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(seen["weights"], saved_weights))
    assert seen["iterations"] == 12  # 3 epochs of 4 batches: the optimizer's state came back too
    assert seen["stopping"] == saved_best
    assert all(np.array_equal(a, b) for a, b in zip(seen["best_weights"], best_weights))
    assert len(second.history["loss"]) == 3


def test_a_damaged_backup_is_a_clear_error_and_a_failed_backup_does_not_stop_training(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    import keras

    from catsdogs.train.resume import backup_callback

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    x, y = np.ones((4, 3), dtype="float32"), np.ones(4, dtype="float32")
    stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=5)
    backup = Backup(tmp_path / "backups", "train_scratch", "d" * 16)
    snapshot = backup.folder / "epoch-0001"
    snapshot.mkdir(parents=True)
    (snapshot / "state.json").write_text("{not json")
    with pytest.raises(ValueError, match=f"cannot resume from .*epoch-0001.*remove .*{backup.folder.name} to train"):
        backup_callback(backup, stopping)
    (snapshot / "state.json").write_text(json.dumps({"epochs_done": 1, "history": {"loss": [1.0]}}))
    (snapshot / "model.weights.h5").write_bytes(b"not hdf5")
    callback = backup_callback(backup, stopping)
    with pytest.raises(ValueError, match="cannot resume from .*epoch-0001.* to train from the start"):
        model.fit(x, y, validation_data=(x, y), epochs=2, initial_epoch=1, callbacks=[stopping, callback], verbose=0)

    backup.remove()

    def full_disk(*args, **kwargs):
        raise OSError(28, "no space left on the device holding .backups")

    monkeypatch.setattr(Backup, "save", full_disk)
    callback = backup_callback(backup, stopping)
    with caplog.at_level("WARNING", logger="resume"):
        model.fit(x, y, validation_data=(x, y), epochs=2, callbacks=[stopping, callback], verbose=0)
    assert len(callback.history["loss"]) == 2
    assert "could not back up epoch 2" in caplog.text
