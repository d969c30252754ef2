"""Tests for the submission stage: Kaggle's id,label format, numeric order, best model, no test set."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from catsdogs.stages.submission import HEADER, choose_model, format_submission, list_test_images, main
from tests.tiny_models import make_workspace, mirror_mean


def write_metrics(root, losses: dict[str, float]) -> None:
    folder = root / "reports/evaluate"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps({name: {"log_loss": loss} for name, loss in losses.items()}))


def test_ids_are_sorted_numerically(tmp_path):
    for name in ("10.jpg", "2.jpg", "1.jpg", "notes.jpg"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "readme.txt").write_text("not an image")
    assert [identifier for identifier, _ in list_test_images(tmp_path)] == [1, 2, 10]
    assert format_submission([(10, 0.25), (2, 0.5), (1, 0.995)]) == "id,label\n1,0.995000\n2,0.500000\n10,0.250000\n"


def test_no_test_folder_gives_an_empty_list(tmp_path):
    assert list_test_images(tmp_path / "absent") == []


def test_choose_model_reads_the_evaluate_metrics(tmp_path):
    write_metrics(tmp_path, {"scratch": 0.5, "top": 0.3, "finetune": 0.35})
    assert choose_model(tmp_path / "reports/evaluate/metrics.json") == "top"
    with pytest.raises(ValueError, match="evaluate stage"):
        choose_model(tmp_path / "missing.json")


def test_submission_uses_the_best_model_and_clips(tmp_path, monkeypatch, caplog):
    from PIL import Image

    from catsdogs.models.files import load_model
    from catsdogs.predict.predictor import read_image

    root = make_workspace(tmp_path)
    write_metrics(root, {"scratch": 0.7, "finetune": 0.2, "top": 0.9})
    (root / "data/raw/test/3.jpg").write_bytes(b"\xff\xd8 not really a jpeg")  # unreadable: gets 0.5
    Image.new("L", (1000, 1000)).save(root / "data/raw/test/6.jpg", format="PNG")  # a small file, 1 Mpx
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["images"]["max_pixels"] = 100_000
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(root)
    with caplog.at_level("WARNING", logger="submission"):
        main()
    submission = pd.read_csv(root / "reports/submission.csv")
    assert len(submission) == 6
    assert list(submission.columns) == ["id", "label"]
    assert submission["id"].tolist() == [1, 2, 3, 4, 5, 6]  # Kaggle needs a row for every id
    assert submission.set_index("id").loc[3, "label"] == 0.5
    assert submission.set_index("id").loc[6, "label"] == 0.5
    assert "skipped data/raw/test/3.jpg: not an image: cannot identify image file" in caplog.text
    assert "skipped data/raw/test/6.jpg: too large: Image size (1000000 pixels) exceeds limit" in caplog.text
    assert "2 of 6 test images skipped (P(dog)=0.5 submitted for them): ids 3, 6" in caplog.text
    model = load_model(root / "models/finetune.keras")  # the best: lowest log loss
    image = read_image(root / "data/raw/test/4.jpg", 32)[np.newaxis]
    # prediction.tta: auto mirror-averages a model that is not built on VGG16, as this tiny one
    expected = float(np.clip(mirror_mean(model, image)[0], 0.005, 0.995))
    assert submission.set_index("id").loc[4, "label"] == pytest.approx(expected, abs=1e-6)
    assert submission["label"].between(0.005, 0.995).all()


def test_submission_with_the_top_model_stacks_vgg16(tmp_path, monkeypatch):
    """``top`` takes features: for images it runs on VGG16 (random weights here) at the params' size."""

    root = make_workspace(tmp_path)
    write_metrics(root, {"scratch": 0.7, "top": 0.1})
    monkeypatch.chdir(root)
    # VGG16 at 32x32 gives 1x1x512 features: the tiny top (2x2x8) does not fit, and says so.
    with pytest.raises(ValueError, match="top classifier expects features of shape"):
        main()


def test_without_a_test_set_the_header_is_written(tmp_path, monkeypatch, caplog):

    root = make_workspace(tmp_path, with_test=False)
    monkeypatch.chdir(root)
    with caplog.at_level("INFO", logger="submission"):
        main()
    assert (root / "reports/submission.csv").read_text() == HEADER + "\n"
    assert "no test images" in caplog.text


def test_top_model_on_images_matches_features_from_the_same_vgg16(tmp_path, monkeypatch):
    """Stacked on VGG16 (paths.vgg16_weights), ``top`` gives what it gives on extract_features' features."""
    import keras

    from catsdogs.core.params import load_params
    from catsdogs.models import vgg
    from catsdogs.models.files import save_model
    from catsdogs.predict.predictor import read_image

    root = make_workspace(tmp_path)
    keras.utils.set_random_seed(7)
    inputs = keras.Input((1, 1, 512))
    top = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(inputs)))
    save_model(top, root / "models/top.keras")
    write_metrics(root, {"scratch": 0.7, "top": 0.1})
    monkeypatch.chdir(root)
    params = load_params()
    main()
    assert len(pd.read_csv(root / "reports/submission.csv")) == 5
    submission = pd.read_csv(root / "reports/submission.csv").set_index("id")

    extractor = vgg.vgg16_image_model(vgg.build_vgg16_base(32, params.paths.vgg16_weights), "vgg16", 32)
    image = read_image(root / "data/raw/test/2.jpg", 32)
    features = extractor.predict(image[np.newaxis], verbose=0)
    expected = float(np.clip(top.predict(features, verbose=0)[0, 0], 0.005, 0.995))
    assert submission.loc[2, "label"] == pytest.approx(expected, abs=1e-5)


def test_test_names_the_pipeline_cannot_use_are_skipped_with_a_warning(tmp_path, caplog):
    # A superscript, an Arabic-Indic digit, a number longer than any id, a newline in the name.
    for name in ("3.jpg", "\u00b2.jpg", "\u0664.jpg", "1" * 240 + ".jpg", "7.jpg\n.jpg"):
        (tmp_path / name).write_bytes(b"x")
    with caplog.at_level("WARNING"):
        assert [identifier for identifier, _ in list_test_images(tmp_path)] == [3]
    assert caplog.text.count("not a Kaggle test name (N.jpg), skipped") == 4
    assert "\n.jpg" not in caplog.text  # the name is quoted, its newline escaped
