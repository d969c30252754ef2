"""The training reports every training stage writes (history.csv, live/metrics.json, metrics.json), and the
per-epoch dvclive callback that writes live/metrics.json while training runs."""

from __future__ import annotations

import json
import math

import pytest

from catsdogs.train.training import timing_summary


def test_timing_summary_has_the_keys_every_training_stage_reports():
    assert timing_summary(10.0, 100, 4) == {"training_seconds": 10.0, "seconds_per_epoch": 2.5, "images_per_second": 40.0}
    assert timing_summary(0.0, 100, 0)["images_per_second"] != timing_summary(0.0, 100, 0)["images_per_second"]  # NaN


@pytest.mark.parametrize("history", [{}, {"loss": [0.5]}])
def test_a_history_without_validation_loss_is_refused(history):
    from catsdogs.train.training import summarize_history

    with pytest.raises(ValueError, match="no validation loss"):
        summarize_history(history)


@pytest.mark.parametrize("val_loss, watched_from", [
    ([0.9, 0.3, 0.5, 0.4, 0.45], 0),   # the overall best
    ([0.9, 0.3, 0.5, 0.4, 0.45], 2),   # the best epoch comes before the watched window: not the one kept
    ([0.9, 0.3, 0.5, 0.4, 0.4], 3),    # a tie: the first one is kept
    ([0.9, 0.3, 0.5], 5),              # training ended before any epoch was watched: the last epoch
])
def test_the_best_epoch_is_the_one_keras_early_stopping_keeps(val_loss, watched_from):
    import keras

    from catsdogs.train.training import summarize_history

    # Keras's own rule, driven epoch by epoch with the same losses.
    stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=len(val_loss), start_from_epoch=watched_from, restore_best_weights=True)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    stopping.set_model(model)
    stopping.on_train_begin()
    for epoch, loss in enumerate(val_loss):
        model.layers[0].bias.assign([float(epoch)])  # the weights hold the epoch number
        stopping.on_epoch_end(epoch, {"val_loss": loss})
    stopping.on_train_end()
    kept_epoch = int(model.layers[0].bias.numpy()[0]) + 1

    history = {"val_loss": val_loss, "val_accuracy": [1 - loss for loss in val_loss]}
    summary = summarize_history(history, watched_from=watched_from)
    assert summary["best_epoch"] == kept_epoch
    assert summary["best_val_loss"] == val_loss[kept_epoch - 1]
    assert summary["best_val_accuracy"] == pytest.approx(1 - val_loss[kept_epoch - 1])


def _fit_with_live(reports, epochs: int, watch=None, initial_epoch: int = 0):
    """A two-input sigmoid model fitted up to ``epochs`` (from ``initial_epoch``, as a resumed run is) with the
    live callback (and ``watch`` after it)."""
    import keras
    import numpy as np

    from catsdogs.train.live import live_callback

    keras.utils.set_random_seed(0)
    features = np.random.default_rng(0).normal(size=(32, 2)).astype("float32")
    labels = (features[:, 0] > 0).astype("float32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    callbacks = [live_callback(reports), *([watch] if watch else [])]
    return model.fit(features, labels, validation_data=(features, labels), epochs=epochs, batch_size=8,
                     initial_epoch=initial_epoch, callbacks=callbacks, verbose=0).history


def test_each_epoch_is_in_live_metrics_json_as_it_ends_and_the_end_writes_the_same(tmp_path, monkeypatch):
    """While fit runs, live/metrics.json holds the epoch that just ended (dvclive's step and its values),
    written whole; after it, write_training_reports writes the same from the history."""
    import keras

    from catsdogs.train.training import write_training_reports

    monkeypatch.chdir(tmp_path)  # no DVC repository above: dvclive's step signal has nowhere to go
    live_file = tmp_path / "reports/live/metrics.json"
    seen = []

    class Watch(keras.callbacks.Callback):  # runs after the live callback, inside each epoch's end
        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, json.loads(live_file.read_text()), dict(logs)))

    history = _fit_with_live(tmp_path / "reports", 3, Watch())
    assert [epoch for epoch, _, _ in seen] == [0, 1, 2]
    for epoch, live, logs in seen:
        assert live["step"] == epoch and live["epoch"] == epoch + 1
        assert live["train"] == {"loss": pytest.approx(logs["loss"], abs=1e-6),
                                 "accuracy": pytest.approx(logs["accuracy"], abs=1e-6)}
        assert live["eval"] == {"loss": pytest.approx(logs["val_loss"], abs=1e-6),
                                "accuracy": pytest.approx(logs["val_accuracy"], abs=1e-6)}
    during = json.loads(live_file.read_text())
    # dvclive's per-metric .tsv files (a second history.csv), dvc.yaml or report: none; no temporaries left.
    assert sorted(path.name for path in live_file.parent.iterdir()) == ["metrics.json"]
    write_training_reports(tmp_path / "reports", history, {"epochs_run": 3})
    assert json.loads(live_file.read_text()) == during == seen[-1][1]


def test_a_resumed_run_goes_on_counting_from_keras_epoch(tmp_path, monkeypatch):
    """A run resumed after k epochs (fit's initial_epoch k, catsdogs.train.resume) logs its first epoch at
    step k, not 0; only Keras' own history columns are logged; undefined values are null."""
    import keras

    from catsdogs.train.live import live_callback

    monkeypatch.chdir(tmp_path)
    steps = []

    class Watch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            steps.append(json.loads((tmp_path / "reports/live/metrics.json").read_text())["step"])

    _fit_with_live(tmp_path / "reports", 4, Watch(), initial_epoch=2)
    assert steps == [2, 3]
    assert json.loads((tmp_path / "reports/live/metrics.json").read_text())["epoch"] == 4

    callback = live_callback(tmp_path / "reports")
    callback.on_epoch_end(3, {"loss": 0.5, "accuracy": 0.75, "val_loss": 0.6, "val_accuracy": 0.7,
                              "learning_rate": 0.01})
    live = json.loads((tmp_path / "reports/live/metrics.json").read_text())
    assert live == {"step": 3, "epoch": 4, "train": {"loss": 0.5, "accuracy": 0.75},
                    "eval": {"loss": 0.6, "accuracy": 0.7}}
    callback.on_epoch_end(4, {"loss": math.nan, "accuracy": 0.5, "val_loss": math.inf, "val_accuracy": 0.5})
    callback.on_train_end()
    live = json.loads((tmp_path / "reports/live/metrics.json").read_text())
    assert live["step"] == 4 and live["train"]["loss"] is None and live["eval"]["loss"] is None  # undefined: null


def test_a_fit_that_runs_no_epoch_ends_cleanly(tmp_path, monkeypatch):
    """A run resumed from a backup of a finished run calls fit for no epoch: the callback only ends."""
    from catsdogs.train.live import live_callback

    monkeypatch.chdir(tmp_path)
    callback = live_callback(tmp_path / "reports")
    callback.on_train_begin()
    callback.on_train_end()  # dvclive reads its metrics file back at the end: it must be there
    assert json.loads((tmp_path / "reports/live/metrics.json").read_text()) == {}


def test_a_stage_that_trained_no_epoch_still_writes_live_metrics(tmp_path):
    """finetune.epochs 0: the declared live/metrics.json exists; an older version's .tsv files are gone."""
    from catsdogs.train.live import live_summary
    from catsdogs.train.training import write_training_reports

    stale = tmp_path / "reports/live/plots/metrics/train/loss.tsv"
    stale.parent.mkdir(parents=True)
    stale.write_text("step\tloss\n0\t0.7\n")
    write_training_reports(tmp_path / "reports", {}, {"epochs_run": 0})
    assert json.loads((tmp_path / "reports/live/metrics.json").read_text()) == {"epoch": 0}
    assert sorted(path.name for path in (tmp_path / "reports/live").iterdir()) == ["metrics.json"]
    assert live_summary({"loss": [0.7, 0.5], "val_loss": [0.69, math.nan]}) == {
        "step": 1, "epoch": 2, "train": {"loss": 0.5}, "eval": {"loss": None}}


def test_making_the_live_callback_leaves_the_stage_streams_alone(tmp_path):
    """dvclive imports dvc, whose set-up wraps sys.stdout and sys.stderr (colorama): the stage's streams are
    put back, so its log lines and Keras' progress bar are printed as without dvclive. A fresh process, since
    dvc wraps them only on its first import."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import sys; streams = sys.stdout, sys.stderr\n"
            "from catsdogs.train.live import live_callback\n"
            "live_callback('reports')\n"
            "assert 'dvc' in sys.modules\n"
            "print((sys.stdout, sys.stderr) == streams)")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "True"


def test_a_failed_stage_leaves_no_progress_file_and_no_folder_made_for_it(tmp_path):
    from catsdogs.train.live import discarded_on_failure, write_live_summary

    reports = tmp_path / "reports" / "scratch"
    with pytest.raises(ValueError, match="at chance"):
        with discarded_on_failure(reports):
            write_live_summary(reports, {"loss": [0.7], "val_loss": [0.69]})  # what the epochs wrote
            raise ValueError("at chance")
    assert not (tmp_path / "reports").exists()

    (tmp_path / "reports" / "top").mkdir(parents=True)  # another stage's reports: kept, and their folder too
    with pytest.raises(KeyboardInterrupt):
        with discarded_on_failure(reports):
            write_live_summary(reports, {"loss": [0.7], "val_loss": [0.69]})
            raise KeyboardInterrupt
    assert sorted(path.name for path in (tmp_path / "reports").iterdir()) == ["top"]

    with discarded_on_failure(reports):  # success: what was written stays
        write_live_summary(reports, {"loss": [0.7], "val_loss": [0.69]})
    assert json.loads((reports / "live" / "metrics.json").read_text())["epoch"] == 1
