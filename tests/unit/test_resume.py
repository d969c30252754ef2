"""A killed train_scratch or finetune resumes from its last finished epoch; a change of params, data or code
never does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from catsdogs.sources.synthetic import write_split_layout
from catsdogs.train.resume import Backup, backup_key

SIZE = 32


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
