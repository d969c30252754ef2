"""Test-time augmentation (the mean P(dog) of a photo and its mirror image) and the ensemble of models,
through evaluate, the submission and ``catsdogs predict``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.tiny_models import IMAGE_SIZE, make_workspace, mirror_mean, tiny_image_model


def asymmetric_image_model(seed: int = 3):
    """An image model that reads where things are (Flatten, not pooling): its mirror image's answer differs."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="image")
    x = layers.Conv2D(2, 3, padding="same", activation="relu")(layers.Rescaling(1.0 / 255)(inputs))
    outputs = layers.Dense(1, activation="sigmoid")(layers.Flatten()(x))
    return keras.Model(inputs, outputs, name="asymmetric_image_model")


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (4, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)


def test_mirror_average_is_the_mean_of_an_image_and_its_mirror_and_loads_in_safe_mode(tmp_path, images):
    from catsdogs.models.files import load_model, save_model
    from catsdogs.predict.predictor import with_mirror_average

    model = tiny_image_model(0)
    tta = with_mirror_average(model)
    expected = mirror_mean(model, images)
    np.testing.assert_allclose(tta.predict(images, verbose=0)[:, 0], expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(expected, model.predict(images, verbose=0)[:, 0])  # the mirror changes the answer
    save_model(tta, tmp_path / "tta.keras")
    reloaded = load_model(tmp_path / "tta.keras")  # HorizontalFlip is a registered project layer
    np.testing.assert_allclose(reloaded.predict(images, verbose=0)[:, 0], expected, rtol=1e-5, atol=1e-6)


def test_an_ensemble_answers_the_mean_of_its_models(images):
    from catsdogs.predict.predictor import ensemble_of

    models = [tiny_image_model(0), tiny_image_model(2)]
    expected = np.mean([model.predict(images, verbose=0)[:, 0] for model in models], axis=0)
    np.testing.assert_allclose(ensemble_of(models).predict(images, verbose=0)[:, 0], expected, rtol=1e-5, atol=1e-6)
    assert ensemble_of(models[:1]) is models[0]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A tiny project with image models only (the tiny top classifier cannot stack on VGG16 at 32 px)."""
    root = make_workspace(tmp_path)
    (root / "models/top.keras").unlink()
    return root


def set_params(root: Path, section: str, values: dict) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def test_evaluate_with_tta_scores_mirror_averaged_image_models(workspace, monkeypatch):
    from catsdogs.data.datasets import list_labelled_images
    from catsdogs.models.files import load_model
    from catsdogs.predict.predictor import read_image
    from catsdogs.stages import evaluate

    set_params(workspace, "prediction", {"tta": True})
    monkeypatch.chdir(workspace)
    evaluate.main()
    metrics = json.loads((workspace / "reports/evaluate/metrics.json").read_text())
    assert set(metrics) == {"scratch", "finetune", "ensemble"}
    assert metrics["scratch"]["tta"] is True
    table = pd.read_csv(workspace / "reports/evaluate/predictions.csv")
    paths, _ = list_labelled_images(workspace / "data/validation")
    pixels = np.stack([read_image(path, IMAGE_SIZE) for path in paths])
    expected = {name: mirror_mean(load_model(workspace / f"models/{name}.keras"), pixels) for name in ("scratch", "finetune")}
    np.testing.assert_allclose(table["p_scratch"], np.clip(expected["scratch"], 0.005, 0.995), atol=2e-6)
    ensemble = np.clip((expected["scratch"] + expected["finetune"]) / 2, 0.005, 0.995)
    np.testing.assert_allclose(table["p_ensemble"], ensemble, atol=2e-6)


def vgg16_finetune_stand_in(seed: int = 7):
    """An image model built on VGG16 (random weights) as finetune builds it: the base, then a top."""
    import keras

    from catsdogs.models import vgg

    keras.utils.set_random_seed(seed)
    base = vgg.vgg16_base(IMAGE_SIZE)
    features = keras.Input(tuple(base.output_shape[1:]), name="features")
    top = keras.Model(features, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(features)))
    return vgg.vgg16_image_model(base, "vgg16", IMAGE_SIZE, top=top, name="vgg16_finetune")


def test_auto_tta_mirrors_every_model_but_those_built_on_vgg16():
    from catsdogs.predict.predictor import mirrors

    scratch, on_vgg16 = tiny_image_model(0), vgg16_finetune_stand_in()
    assert mirrors(scratch, "auto") and not mirrors(on_vgg16, "auto")
    assert mirrors(on_vgg16, True) and not mirrors(scratch, False)
    with pytest.raises(ValueError, match=r"prediction.tta: got 'yes'; allowed: true, false or 'auto'"):
        mirrors(scratch, "yes")


def test_evaluate_by_default_mirror_averages_the_scratch_cnn_but_not_the_vgg16_models(workspace, monkeypatch):
    from catsdogs.data.datasets import list_labelled_images
    from catsdogs.models.files import load_model, save_model
    from catsdogs.predict.predictor import read_image
    from catsdogs.stages import evaluate

    save_model(asymmetric_image_model(), workspace / "models/scratch.keras")
    save_model(vgg16_finetune_stand_in(), workspace / "models/finetune.keras")
    assert yaml.safe_load((workspace / "params.yaml").read_text())["prediction"]["tta"] == "auto"  # the shipped default
    monkeypatch.chdir(workspace)
    evaluate.main()
    metrics = json.loads((workspace / "reports/evaluate/metrics.json").read_text())
    assert {name: values["tta"] for name, values in metrics.items()} == {
        "scratch": True, "finetune": False, "ensemble": True}
    table = pd.read_csv(workspace / "reports/evaluate/predictions.csv")
    paths, _ = list_labelled_images(workspace / "data/validation")
    pixels = np.stack([read_image(path, IMAGE_SIZE) for path in paths])
    scratch = mirror_mean(load_model(workspace / "models/scratch.keras"), pixels)
    finetune = load_model(workspace / "models/finetune.keras").predict(pixels, verbose=0)[:, 0]
    scratch_plain = load_model(workspace / "models/scratch.keras").predict(pixels, verbose=0)[:, 0]
    assert np.abs(scratch - scratch_plain).max() > 1e-3  # a mirrored and a plain answer can be told apart
    assert np.abs(finetune - mirror_mean(load_model(workspace / "models/finetune.keras"), pixels)).max() > 1e-4
    np.testing.assert_allclose(table["p_scratch"], np.clip(scratch, 0.005, 0.995), atol=2e-6)
    np.testing.assert_allclose(table["p_finetune"], np.clip(finetune, 0.005, 0.995), atol=2e-6)


@pytest.mark.parametrize("flag", [None, "--no-tta", "--tta"])
def test_predict_command_mirrors_the_scratch_cnn_by_default_and_the_flags_override_it(workspace, monkeypatch,
                                                                                    capsys, flag):
    from catsdogs.cli import EXIT_OK, main
    from catsdogs.models.files import load_model, save_model
    from catsdogs.predict.predictor import read_image

    save_model(asymmetric_image_model(), workspace / "models/scratch.keras")
    monkeypatch.chdir(workspace)
    arguments = ["predict", "data/raw/test/2.jpg", "--model", "scratch", "--format", "csv"]
    assert main(arguments + ([flag] if flag else [])) == EXIT_OK
    row = next(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    model = load_model(workspace / "models/scratch.keras")
    image = read_image(workspace / "data/raw/test/2.jpg", IMAGE_SIZE)[np.newaxis]
    plain, mirrored = float(model.predict(image, verbose=0)[0, 0]), float(mirror_mean(model, image)[0])
    assert abs(plain - mirrored) > 1e-3  # the two answers can be told apart
    expected = plain if flag == "--no-tta" else mirrored
    assert float(row["p_dog"]) == pytest.approx(float(np.clip(expected, 0.005, 0.995)), abs=1e-4)


def test_the_submission_uses_the_ensemble_when_it_is_best(workspace, monkeypatch):
    from catsdogs.models.files import load_model
    from catsdogs.predict.predictor import read_image
    from catsdogs.stages import submission

    metrics = {name: {"log_loss": loss} for name, loss in (("scratch", 0.6), ("finetune", 0.5), ("ensemble", 0.4))}
    (workspace / "reports/evaluate").mkdir(parents=True)
    (workspace / "reports/evaluate/metrics.json").write_text(json.dumps(metrics))
    monkeypatch.chdir(workspace)
    submission.main()
    rows = pd.read_csv(workspace / "reports/submission.csv").set_index("id")
    image = read_image(workspace / "data/raw/test/3.jpg", IMAGE_SIZE)[np.newaxis]
    members = [mirror_mean(load_model(workspace / f"models/{name}.keras"), image)[0] for name in ("scratch", "finetune")]
    assert rows.loc[3, "label"] == pytest.approx(float(np.clip(np.mean(members), 0.005, 0.995)), abs=2e-6)


def test_predict_command_with_the_ensemble_and_tta(workspace, monkeypatch, capsys):
    from catsdogs.cli import EXIT_OK, main
    from catsdogs.models.files import load_model
    from catsdogs.predict.predictor import read_image

    monkeypatch.chdir(workspace)
    assert main(["predict", "data/raw/test/2.jpg", "--model", "ensemble", "--tta", "--format", "csv"]) == EXIT_OK
    row = next(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    image = read_image(workspace / "data/raw/test/2.jpg", IMAGE_SIZE)[np.newaxis]
    members = [mirror_mean(load_model(workspace / f"models/{name}.keras"), image)[0] for name in ("scratch", "finetune")]
    assert float(row["p_dog"]) == pytest.approx(float(np.clip(np.mean(members), 0.005, 0.995)), abs=1e-4)


def test_temperature_calibration_fits_overconfidence_and_is_scored_on_held_out_photos():
    from sklearn.metrics import log_loss

    from catsdogs.predict.metrics import apply_temperature, cross_fitted_log_loss, fit_temperature

    rng = np.random.default_rng(0)
    honest = rng.uniform(0.05, 0.95, 4000)  # calibrated: each photo is a dog with exactly this probability
    labels = (rng.uniform(size=honest.size) < honest).astype(int)
    overconfident = apply_temperature(honest, 1 / 3)  # the same ranking, three times the logit
    np.testing.assert_allclose(apply_temperature(honest, 1.0), honest)
    temperature = fit_temperature(labels, overconfident, 0.005)
    assert temperature == pytest.approx(3.0, rel=0.25)
    before = log_loss(labels, np.clip(overconfident, 0.005, 0.995))
    held_out = cross_fitted_log_loss(labels, overconfident, 0.005)
    assert held_out < before - 0.05
    assert fit_temperature(np.ones(10, int), np.full(10, 0.9), 0.005) == 1.0  # one class: nothing to fit


def test_evaluate_reports_temperatures_and_the_submission_applies_them_when_asked(workspace, monkeypatch):
    from catsdogs.models.files import load_model
    from catsdogs.predict.metrics import apply_temperature
    from catsdogs.predict.predictor import read_image
    from catsdogs.stages import evaluate, submission

    monkeypatch.chdir(workspace)
    evaluate.main()
    metrics = json.loads((workspace / "reports/evaluate/metrics.json").read_text())
    for values in metrics.values():
        assert values["temperature"] > 0 and values["calibrated_log_loss_cross_fitted"] > 0
    metrics = {"scratch": {"log_loss": 0.3, "temperature": 2.5}, "finetune": {"log_loss": 0.6, "temperature": 1.0}}
    (workspace / "reports/evaluate/metrics.json").write_text(json.dumps(metrics))
    set_params(workspace, "prediction", {"calibrate": True})
    submission.main()
    rows = pd.read_csv(workspace / "reports/submission.csv").set_index("id")
    image = read_image(workspace / "data/raw/test/1.jpg", IMAGE_SIZE)[np.newaxis]
    raw = mirror_mean(load_model(workspace / "models/scratch.keras"), image)[0]  # prediction.tta: auto
    assert rows.loc[1, "label"] == pytest.approx(float(np.clip(apply_temperature(raw, 2.5)[0], 0.005, 0.995)), abs=2e-6)
    assert rows.loc[1, "label"] != pytest.approx(float(raw), abs=1e-3)
