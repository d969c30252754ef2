"""extract_features: shapes, row/label/file alignment, streaming to disk, the weights file, bad input.

Where the weights come from (imagenet, none, a local file) is the weights stage's: tests/test_weights.py.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from catsdogs.data import features as feature_files
from catsdogs.data.datasets import decode_and_resize
from catsdogs.models import vgg
from catsdogs.sources.synthetic import write_split_layout
from catsdogs.stages import extract_features as stage
from tests.conftest import ROOT
from tests.tiny_models import link_vgg16_weights, random_vgg16_weights

SIZE = 32  # VGG16's smallest input: features 1 x 1 x 512


@pytest.fixture(autouse=True)
def float32_policy():
    """Every test starts and ends with the default dtype policy (mixed precision is global)."""
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


def make_project(root: Path, cats: int = 7, dogs: int = 3, params: dict | None = None) -> Path:
    """A folder with params.yaml and an unbalanced data/train (cats, dogs) plus data/validation (2, 2)."""
    root.mkdir(parents=True, exist_ok=True)
    write_split_layout(root / "data" / "train", max(cats, dogs), SIZE, seed=1)
    for name, keep in (("cat", cats), ("dog", dogs)):
        for index in range(keep, max(cats, dogs)):
            (root / "data" / "train" / f"{name}s" / f"{name}.{index}.jpg").unlink()
    write_split_layout(root / "data" / "validation", 2, SIZE, seed=2)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["common"].update(image_size=SIZE, batch_size=4)
    raw["vgg16"]["weights"] = "none"
    for section, values in (params or {}).items():
        raw[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    link_vgg16_weights(root / raw["paths"]["vgg16_weights"])  # what the weights stage writes
    return root


def extract(split_dirs: dict, output: Path, weights_file: Path | None = None, mixed_precision: bool = False):
    """Run the stage's extraction function at the test size (random VGG16 weights unless given a file)."""
    weights_file = weights_file or random_vgg16_weights()
    return stage.extract_features(split_dirs, output, SIZE, 4, weights_file, "vgg16", mixed_precision)


def test_unbalanced_split_rows_labels_and_files_agree(tmp_path, monkeypatch):
    project = make_project(tmp_path / "project")
    calls = []
    real_open_memmap = np.lib.format.open_memmap

    def spy(filename, mode="r+", **kwargs):
        calls.append((Path(filename).name, mode))
        return real_open_memmap(filename, mode=mode, **kwargs)

    monkeypatch.setattr(np.lib.format, "open_memmap", spy)
    # Re-map every 3 rows (3 x 512 x 4 bytes): the writer must resume at the right row.
    monkeypatch.setattr(feature_files, "REMAP_BYTES", 3 * 512 * 4)
    monkeypatch.chdir(project)
    stage.main()

    features_dir = project / "features"
    train, train_labels = feature_files.load_split(features_dir, "train")
    assert train.shape == (10, 1, 1, 512) and train.dtype == np.float32
    assert train_labels.tolist() == [0] * 7 + [1] * 3
    names = (features_dir / "train_files.txt").read_text().splitlines()
    assert names == [f"cats/cat.{i}.jpg" for i in range(7)] + [f"dogs/dog.{i}.jpg" for i in range(3)]
    # A row matches its file: the features of one image computed alone equal its row.
    model = vgg.vgg16_image_model(vgg.build_vgg16_base(SIZE, random_vgg16_weights()), "vgg16", SIZE)
    for row in (0, 6, 7, 9):
        image = decode_and_resize(str(project / "data" / "train" / names[row]), SIZE)[None]
        np.testing.assert_allclose(model.predict_on_batch(image)[0], train[row], rtol=1e-5, atol=1e-5)
    validation, validation_labels = feature_files.load_split(features_dir, "validation")
    assert validation.shape == (4, 1, 1, 512) and validation_labels.tolist() == [0, 0, 1, 1]

    meta = json.loads((features_dir / "meta.json").read_text())
    assert meta["counts"]["train"] == {"total": 10, "cats": 7, "dogs": 3}
    assert meta["feature_shape"] == [1, 1, 512] and meta["image_size"] == SIZE
    assert meta["preprocessing"] == "vgg16" and meta["dtype_policy"] == "float32"
    weights_file = project / "models/vgg16_notop.weights.h5"
    assert meta["weights"] == {"file": weights_file.name, "sha256": hashlib.sha256(weights_file.read_bytes()).hexdigest()}
    assert meta["software"]["tensorflow"] == metadata.version("tensorflow") and meta["software"]["accelerators"] == "none"
    # Streamed: created with w+ and re-opened (r+) as rows accumulate; no temporary folders left behind.
    assert ("train_features.npy", "w+") in calls and ("validation_features.npy", "w+") in calls
    assert calls.count(("train_features.npy", "r+")) == 2  # after rows 4 and 8 (batches of 4 >= 3 rows)
    assert sorted(p.name for p in project.iterdir()) == ["data", "features", "models", "params.yaml"]


def test_preprocessing_layer_matches_keras_preprocess_input():
    images = np.random.default_rng(0).uniform(0, 255, size=(2, SIZE, SIZE, 3)).astype("float32")
    expected = keras.applications.vgg16.preprocess_input(images.copy())
    np.testing.assert_allclose(vgg.ImagePreprocessing("vgg16")(images), expected, atol=1e-4)
    np.testing.assert_allclose(vgg.ImagePreprocessing("rescale")(images), images / 255, atol=1e-6)
    with pytest.raises(ValueError, match="not one of vgg16, rescale"):
        vgg.ImagePreprocessing("caffe")


def test_mixed_precision_features_are_float32_and_close(tmp_path):
    write_split_layout(tmp_path / "train", 3, SIZE, seed=1)
    dirs = {"train": tmp_path / "train"}
    extract(dirs, tmp_path / "fp32")
    meta = extract(dirs, tmp_path / "bf16", mixed_precision=True)
    assert meta["dtype_policy"] == "mixed_bfloat16"
    full = np.load(tmp_path / "fp32" / "train_features.npy")
    half = np.load(tmp_path / "bf16" / "train_features.npy")
    assert half.dtype == np.float32 and half.shape == full.shape
    # bfloat16 keeps 8 significant bits (relative step 2^-8 = 0.4 %); over 13 convolutions the
    # rounding accumulates to a few percent, and a bug (wrong preprocessing, wrong weights)
    # gives errors of order 100 %. 10 % separates the two.
    relative = np.linalg.norm(half - full) / np.linalg.norm(full)
    assert 0 < relative < 0.10


