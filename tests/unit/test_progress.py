"""The estimate of the time left that stages log (catsdogs.core.progress), and where each stage logs it:
training (the Keras callback), split's decode-check, evaluate's predictions per image model, and the
predictions of the submission and ``catsdogs predict``."""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import yaml

from catsdogs.core.params import validate_params
from catsdogs.core.progress import WorkEstimate, format_duration, training_estimate_callback
from tests.tiny_models import IMAGE_SIZE, make_workspace, tiny_image_model


def messages(caplog, logger: str | None = None) -> list[str]:
    return [record.getMessage() for record in caplog.records if logger is None or record.name == logger]


def estimates(caplog, what: str) -> list[str]:
    """The estimate lines of ``what`` ("what: N of M units in, about T left (R units/s)")."""
    return [message for message in messages(caplog) if message.startswith(f"{what}: ") and " left (" in message]


def test_durations_read_at_a_useful_precision():
    assert [format_duration(seconds) for seconds in (0.4, 42, 89, 600, 5399, 9000)] == [
        "0 s", "42 s", "89 s", "10 min", "90 min", "2.5 h"
    ]


def test_one_estimate_once_enough_work_ran_after_the_first_unit(caplog):
    caplog.set_level(logging.INFO, logger="progress-test")
    estimate = WorkEstimate(logging.getLogger("progress-test"), "work", 10, "images", estimate_after=4)
    for _ in range(3):
        estimate.update(1)
    assert messages(caplog, "progress-test") == []  # the first unit starts the clock; 3 < 4
    estimate.update(1)
    [line] = messages(caplog, "progress-test")
    assert line.startswith("work: 4 of 10 images in, about ") and line.endswith(" images/s)")
    for _ in range(6):
        estimate.update(1)
    assert len(messages(caplog, "progress-test")) == 1  # one estimate, not one per unit


def test_no_estimate_when_the_work_is_done_before_it_is_due(caplog):
    caplog.set_level(logging.INFO, logger="progress-test")
    estimate = WorkEstimate(logging.getLogger("progress-test"), "work", 4, "images", estimate_after=4)
    for _ in range(4):
        estimate.update(1)
    assert messages(caplog, "progress-test") == []  # "about 0 s left" once all is done says nothing


def test_training_logs_its_work_an_estimate_and_the_first_epoch(caplog):
    import keras

    caplog.set_level(logging.INFO, logger="progress-test")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    x = np.random.default_rng(0).normal(size=(24, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    callback = training_estimate_callback(logging.getLogger("progress-test"), "training", 2, None)
    model.fit(x, y, batch_size=2, epochs=2, validation_data=(x, y), callbacks=[callback], verbose=0)
    lines = messages(caplog, "progress-test")
    assert lines[0] == "training: up to 2 epochs of 12 batches"
    assert len(estimates(caplog, "training")) == 1
    assert estimates(caplog, "training")[0].startswith("training: 10 of 24 batches in, about ")
    assert any(line.startswith("training: first epoch (validation included) took ") for line in lines)


def test_split_estimates_its_decode_check(tmp_path, caplog, monkeypatch):
    from catsdogs.data import split
    from catsdogs.sources.synthetic import write_kaggle_train

    caplog.set_level(logging.INFO, logger="split")
    monkeypatch.setattr(split, "ESTIMATE_AFTER", 5)
    write_kaggle_train(tmp_path / "raw", 6, 32, seed=0)
    defaults = validate_params({})
    split.split_dataset(tmp_path / "raw", tmp_path / "train", tmp_path / "validation",
                        **defaults.split.model_dump(), max_pixels=defaults.images.max_pixels, seed=defaults.common.seed)
    [line] = estimates(caplog, "decode-check")
    assert line.startswith("decode-check: 5 of 12 images in, about ")


def test_evaluate_estimates_each_image_model(tmp_path, caplog):
    from catsdogs.stages import evaluate

    caplog.set_level(logging.INFO, logger="evaluate")
    root = make_workspace(tmp_path)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["common"]["batch_size"] = 2  # 12 validation images: 6 batches, an estimate after 5
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with contextlib.chdir(root):
        evaluate.main()
    for name in ("scratch", "finetune"):
        [line] = estimates(caplog, name)
        assert line.startswith(f"{name}: 5 of 6 batches in, about ")
    assert estimates(caplog, "top") == []  # it reads the extracted features: no image to wait for


def test_predictions_of_files_estimate_after_two_chunks(tmp_path, caplog):
    from catsdogs.predict.predictor import CHUNK_BATCHES, predict_files
    from catsdogs.sources.synthetic import write_kaggle_test

    caplog.set_level(logging.INFO, logger="catsdogs.predict.predictor")
    files = write_kaggle_test(tmp_path / "test", 2 * CHUNK_BATCHES + 4, IMAGE_SIZE, seed=5)
    defaults = validate_params({})
    results = predict_files(tiny_image_model(0), files, IMAGE_SIZE, 1, defaults.prediction.clip,
                            defaults.images.max_pixels)
    assert len(results) == len(files) and all(result.error is None for result in results)
    [line] = estimates(caplog, "predictions")  # the first chunk starts the clock, the second ends the wait
    assert line.startswith(f"predictions: {2 * CHUNK_BATCHES} of {len(files)} images in, about ")


def test_evaluating_a_model_estimates_like_predicting(caplog):
    """finetune scores its starting point with model.evaluate (a whole VGG16 pass on a CPU): the same estimate."""
    import keras

    from catsdogs.core.progress import prediction_estimate_callback

    caplog.set_level(logging.INFO, logger="progress-test")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    x = np.zeros((12, 3), dtype="float32")
    callback = prediction_estimate_callback(logging.getLogger("progress-test"), "starting point")
    model.evaluate(x, np.zeros(12, dtype="float32"), batch_size=2, callbacks=[callback], verbose=0)
    [line] = estimates(caplog, "starting point")
    assert line.startswith("starting point: 5 of 6 batches in, about ")
