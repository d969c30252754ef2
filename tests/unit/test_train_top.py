"""train_top: the pure builder, learning on generated features, outputs, safe-mode reload, bad features."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from catsdogs.core.runner import run_stage
from catsdogs.data import features as feature_files
from catsdogs.stages import train_top as stage
from tests.conftest import ROOT

FEATURE_SHAPE = (2, 2, 8)


def write_features(directory: Path, split: str, features: np.ndarray, labels: np.ndarray) -> None:
    """One split's feature files, as extract_features writes them."""
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / f"{split}_features.npy", features.astype(np.float32))
    names = [f"{'dogs/dog' if label else 'cats/cat'}.{index}.jpg" for index, label in enumerate(labels)]
    feature_files.write_labels_and_files(directory, split, labels, names)


def write_meta(directory: Path, counts: dict[str, int], shape=FEATURE_SHAPE) -> None:
    """A meta.json like extract_features's (only what train_top reads matters here)."""
    meta = {"feature_shape": list(shape), "counts": {split: {"total": n} for split, n in counts.items()},
            "preprocessing": "vgg16", "weights": {"file": "vgg16_notop.weights.h5", "sha256": "0" * 64}}
    (directory / "meta.json").write_text(json.dumps(meta))


def gaussian_clusters(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two classes of features, N(-0.5, 1) and N(+0.5, 1) in every one of 32 dimensions, shuffled."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % 2).astype(np.int32)
    centres = np.where(labels[:, None] == 1, 0.5, -0.5)
    features = centres + rng.normal(size=(count, int(np.prod(FEATURE_SHAPE))))
    return features.reshape(count, *FEATURE_SHAPE), labels


def make_project(root: Path, train_top: dict | None = None) -> Path:
    """A folder with params.yaml and generated features/ (160 train, 80 validation rows)."""
    root.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["train_top"].update({"epochs": 8, "batch_size": 16, **(train_top or {})})
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    for split, count, seed in (("train", 160, 1), ("validation", 80, 2)):
        write_features(root / "features", split, *gaussian_clusters(count, seed))
    write_meta(root / "features", {"train": 160, "validation": 80})
    return root


def test_build_top_classifier_is_the_tutorials_top_model():
    model = stage.build_top_classifier((4, 4, 512), [512, 256], [0.5, 0.2])
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["InputLayer", "Flatten", "Dense", "Dropout", "Dense", "Dropout", "Dense"]
    assert [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == [0.5, 0.2]
    # 8192*512+512 + 512*256+256 + 256+1
    assert model.count_params() == 4_326_401
    assert model.output_shape == (None, 1) and model.layers[-1].activation.__name__ == "sigmoid"
    with pytest.raises(ValueError, match="one dropout per dense layer"):
        stage.build_top_classifier((1, 1, 512), [8, 4], [0.5])


def test_rows_that_disagree_with_labels_are_refused(tmp_path):
    project = make_project(tmp_path / "project")
    features_dir = project / "features"
    features, labels = gaussian_clusters(80, 2)
    np.save(features_dir / "validation_labels.npy", labels[:79])
    with pytest.raises(ValueError, match="has 80 rows but .*validation_labels.npy has \\(79,\\) labels"):
        stage.load_features(features_dir)


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda d: (d / "train_files.txt").write_text("cats/cat.0.jpg\n"), "lists 1 images but there are 160"),
        (lambda d: np.save(d / "train_labels.npy", np.full(160, 2, np.int32)), "labels must be 0 \\(cat\\) or 1"),
        (lambda d: np.save(d / "train_features.npy", np.zeros((160, 1, 1, 32), np.float64)), "expected float32"),
        (lambda d: np.save(d / "train_features.npy", np.zeros((160, 1, 1, 32), np.float32)), "meta.json says"),
        (lambda d: write_meta(d, {"train": 100, "validation": 80}), "records 100 train images"),
        (lambda d: (d / "validation_features.npy").unlink(), "feature file not found"),
        (lambda d: (d / "meta.json").unlink(), "feature metadata not found"),
    ],
)
def test_inconsistent_feature_files_are_refused(tmp_path, break_it, message):
    project = make_project(tmp_path / "project")
    break_it(project / "features")
    with pytest.raises(ValueError, match=message):
        stage.load_features(project / "features")


def test_stage_turns_bad_features_into_one_logged_line(tmp_path, monkeypatch, caplog):
    project = make_project(tmp_path / "project")
    np.save(project / "features" / "train_labels.npy", np.zeros(3, np.int32))
    monkeypatch.chdir(project)
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exit_info:
        run_stage("train_top", stage.main)
    assert exit_info.value.code == 1
    assert "train_top failed" in caplog.text and "train_labels.npy" in caplog.text
    assert not (project / "models").exists()
