"""End to end: download -> split -> weights -> extract_features -> train_top -> finetune with `dvc repro`.

A real pipeline in a temporary git + DVC repo on the synthetic source (32 px,
random VGG16 weights, finetune.epochs 0): checks that each stage reruns only
when its own inputs change; above all that a train_top param never reruns the
feature extraction.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import dvc_status, run, stages_ran, update_params
from tests.tiny_models import random_vgg16_weights


def changed(repo: Path) -> set[str]:
    """The stages `dvc status --json` reports as changed, along the whole chain up to finetune."""
    return set(dvc_status(repo, "finetune", with_deps=True))


def locked(repo: Path, stage: str) -> dict:
    """A stage's entry in dvc.lock (its deps, params and output hashes)."""
    return yaml.safe_load((repo / "dvc.lock").read_text())["stages"][stage]


@pytest.mark.slow
def test_only_stages_whose_inputs_changed_rerun(dvc_repo: Path) -> None:
    update_params(
        dvc_repo,
        {
            "download": {"source": "synthetic", "synthetic": {"count": 10, "size": 32, "test_count": 2}},
            "common": {"image_size": 32, "batch_size": 8},
            "runtime": {"deterministic": True},
            "vgg16": {"weights": "none"},
            "train_top": {"epochs": 2, "batch_size": 8, "units": [16], "dropouts": [0.2]},
            "finetune": {"epochs": 0},
        },
    )
    first = run(["dvc", "repro", "finetune"], dvc_repo)
    assert stages_ran(first) == {"download", "split", "weights", "extract_features", "train_top", "finetune"}
    labels = np.load(dvc_repo / "features/train_labels.npy")
    files = (dvc_repo / "features/train_files.txt").read_text().splitlines()
    assert len(labels) == 16 and [name.startswith("dogs/") for name in files] == list(labels == 1)
    assert np.load(dvc_repo / "features/train_features.npy").shape == (16, 1, 1, 512)
    assert json.loads((dvc_repo / "reports/top/metrics.json").read_text())["epochs_run"] == 2
    assert json.loads((dvc_repo / "reports/finetune/metrics.json").read_text())["skipped"] is True
    assert (dvc_repo / "models/finetune.keras").is_file()
    assert changed(dvc_repo) == set()
    features_lock = locked(dvc_repo, "extract_features")

    # A train_top param: train_top (and finetune, which reads its model) rerun; extraction does not.
    update_params(dvc_repo, {"train_top": {"epochs": 3}})
    assert changed(dvc_repo) == {"train_top"}  # finetune's change (a new top.keras) shows once train_top ran
    second = run(["dvc", "repro", "finetune"], dvc_repo)
    assert stages_ran(second) == {"train_top", "finetune"}
    assert json.loads((dvc_repo / "reports/top/metrics.json").read_text())["epochs_run"] == 3
    assert locked(dvc_repo, "extract_features") == features_lock
    assert locked(dvc_repo, "train_top")["params"]["params.yaml"]["train_top"]["epochs"] == 3

    # Code that changes no result (a comment): train_top reruns and, deterministic, saves the
    # same bytes (no save time, no object ids in the file), so finetune does not rerun.
    top_model = locked(dvc_repo, "train_top")["outs"][0]
    with open(dvc_repo / "catsdogs/stages/train_top.py", "a") as code:
        code.write("# a comment\n")
    assert changed(dvc_repo) == {"train_top"}
    third = run(["dvc", "repro", "finetune"], dvc_repo)
    assert stages_ran(third) == {"train_top"}
    assert locked(dvc_repo, "train_top")["outs"][0] == top_model

    # A finetune param touches finetune only; mixed precision (one switch, runtime.mixed_precision) touches
    # both VGG16 stages that compute with it, and VGG16's preprocessing both stages that apply it.
    update_params(dvc_repo, {"finetune": {"learning_rate": 0.001}})
    assert changed(dvc_repo) == {"finetune"}
    update_params(dvc_repo, {"finetune": {"learning_rate": 0.0001}})
    update_params(dvc_repo, {"runtime": {"mixed_precision": True}})
    assert changed(dvc_repo) == {"extract_features", "finetune"}
    update_params(dvc_repo, {"runtime": {"mixed_precision": False}, "vgg16": {"preprocessing": "rescale"}})
    assert changed(dvc_repo) == {"extract_features", "finetune"}


@pytest.mark.slow
def test_vgg16_weights_are_tracked_by_content(dvc_repo: Path) -> None:
    """A local weights file replaced at the same path reruns extraction; the same weights from
    another source rerun only the weights stage (its output is byte-identical)."""
    update_params(
        dvc_repo,
        {
            "download": {"source": "synthetic", "synthetic": {"count": 4, "size": 32, "test_count": 1}},
            "common": {"image_size": 32, "batch_size": 8},
            "vgg16": {"weights": "none"},
        },
    )
    first = run(["dvc", "repro", "extract_features"], dvc_repo)
    assert stages_ran(first) == {"download", "split", "weights", "extract_features"}
    written = dvc_repo / "models/vgg16_notop.weights.h5"
    features_lock = locked(dvc_repo, "extract_features")

    # The same weights as a local file (what `none` wrote, copied into weights/): only `weights` reruns.
    local = dvc_repo / "weights/vgg16.weights.h5"
    local.write_bytes(written.read_bytes())
    update_params(dvc_repo, {"vgg16": {"weights": "weights/vgg16.weights.h5"}})
    assert set(dvc_status(dvc_repo, "extract_features", with_deps=True)) == {"weights"}
    second = run(["dvc", "repro", "extract_features"], dvc_repo)
    assert stages_ran(second) == {"weights"}
    assert locked(dvc_repo, "extract_features") == features_lock

    # Other weights at the same path: DVC sees the folder's content change; extraction reruns on them.
    local.write_bytes(random_vgg16_weights(seed=43).read_bytes())
    assert set(dvc_status(dvc_repo, "extract_features", with_deps=True)) == {"weights"}
    third = run(["dvc", "repro", "extract_features"], dvc_repo)
    assert stages_ran(third) == {"weights", "extract_features"}
    meta = json.loads((dvc_repo / "features/meta.json").read_text())
    assert meta["weights"]["sha256"] == hashlib.sha256(written.read_bytes()).hexdigest()
    assert meta["weights"]["sha256"] != hashlib.sha256(random_vgg16_weights(seed=42).read_bytes()).hexdigest()
    assert dvc_status(dvc_repo, "extract_features", with_deps=True) == {}
