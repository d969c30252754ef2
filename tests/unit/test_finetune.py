"""finetune: a tiny real run (32 px, weights none), the epochs-0 path, freezing, bad params."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from catsdogs.data.datasets import decode_and_resize, list_labelled_images
from catsdogs.models import vgg
from catsdogs.models.files import load_model
from catsdogs.sources.synthetic import write_split_layout
from catsdogs.stages import extract_features, finetune, train_top, weights
from tests.conftest import ROOT

SIZE = 32


@pytest.fixture(autouse=True)
def float32_policy():
    """Every test starts and ends with the default dtype policy (mixed precision is global)."""
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


def set_params(project: Path, finetune_params: dict, runtime: dict | None = None) -> None:
    """Write project/params.yaml: tiny sizes, random VGG16 weights, the given finetune (and runtime) section."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["common"].update(image_size=SIZE, batch_size=8)
    raw["vgg16"]["weights"] = "none"
    raw["train_top"].update(epochs=3, batch_size=8, units=[16], dropouts=[0.2])
    raw["finetune"].update(finetune_params)
    raw["runtime"].update(runtime or {})
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture(scope="module")
def trained_top(tmp_path_factory) -> Path:
    """A project with data (8 + 8 train, 4 + 4 validation), features and models/top.keras."""
    project = tmp_path_factory.mktemp("finetune") / "project"
    project.mkdir()
    write_split_layout(project / "data" / "train", 8, SIZE, seed=1)
    write_split_layout(project / "data" / "validation", 4, SIZE, seed=2)
    set_params(project, {})
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        weights.main()
        extract_features.main()
        train_top.main()
    return project


@pytest.fixture
def project(trained_top, tmp_path, monkeypatch) -> Path:
    """A private copy of the trained project, as the working directory."""
    copy = tmp_path / "project"
    shutil.copytree(trained_top, copy)
    monkeypatch.chdir(copy)
    return copy


def validation_images(project: Path) -> np.ndarray:
    """The validation images as raw float32 [0, 255] pixels, in listing order."""
    paths, _ = list_labelled_images(project / "data" / "validation")
    return np.stack([decode_and_resize(str(path), SIZE).numpy() for path in paths]).astype(np.float32)


def test_epochs_zero_writes_the_bottleneck_model_on_images(project):
    set_params(project, {"epochs": 0})
    finetune.main()

    metrics = json.loads((project / "reports/finetune/metrics.json").read_text())
    assert metrics["skipped"] is True and metrics["epochs_run"] == 0 and metrics["validation_count"] == 8
    assert (project / "reports/finetune/history.csv").read_text() == "epoch,loss,accuracy,val_loss,val_accuracy\n"
    stacked = load_model(project / "models/finetune.keras")
    top = load_model(project / "models/top.keras")
    # Untrained further, the stacked model on raw images is exactly top(features) on the same
    # images: same seeded VGG16 weights (rebuilt in this stage), same preprocessing layer.
    features = np.load(project / "features/validation_features.npy")
    np.testing.assert_allclose(
        stacked.predict(validation_images(project), verbose=0), top.predict(features, verbose=0), atol=1e-5
    )


def test_unknown_trainable_from_lists_the_layers(project):
    set_params(project, {"epochs": 1, "trainable_from": "block6_conv1"})
    with pytest.raises(ValueError, match="block6_conv1.*choose one of: block1_conv1, .*block5_conv3"):
        finetune.main()
    assert not (project / "models/finetune.keras").exists()


def test_a_top_model_for_another_image_size_is_refused():
    base = vgg.vgg16_base(64)  # features 2 x 2 x 512
    top = train_top.build_top_classifier((1, 1, 512), [4], [0.1])
    with pytest.raises(ValueError, match=r"expects features of shape \(1, 1, 512\) but VGG16 at 64x64 gives"):
        vgg.vgg16_image_model(base, "vgg16", 64, top=top)
