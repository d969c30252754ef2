"""The training reports every training stage writes (history.csv, live/, metrics.json)."""

from __future__ import annotations

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
