"""Tests for the metrics (hand-computed values, confusion orientation) and the evaluate stage."""

from __future__ import annotations

import contextlib
import json
import math

import numpy as np
import pandas as pd
import pytest

from catsdogs.predict.metrics import (
    best_model,
    classification_metrics,
    clip_probabilities,
    confusion_counts,
    roc_points,
)
from tests.tiny_models import features_of, make_workspace


def test_metrics_match_hand_computed_values():
    labels = [0, 0, 1, 1]
    probabilities = [0.1, 0.6, 0.8, 0.3]  # predicted: cat, dog, dog, cat
    metrics = classification_metrics(labels, probabilities, threshold=0.5)
    assert metrics["n"] == 4
    assert metrics["accuracy"] == pytest.approx(0.5)
    # -log P(true class): cats 1-p (0.9, 0.4), dogs p (0.8, 0.3).
    expected_log_loss = -(math.log(0.9) + math.log(0.4) + math.log(0.8) + math.log(0.3)) / 4
    assert metrics["log_loss"] == pytest.approx(expected_log_loss)
    # Dog/cat pairs ranked right: (0.8>0.1), (0.8>0.6), (0.3>0.1) but not (0.3<0.6): 3 of 4.
    assert metrics["roc_auc"] == pytest.approx(0.75)
    assert metrics["precision"] == {"cat": pytest.approx(0.5), "dog": pytest.approx(0.5)}
    assert metrics["recall"] == {"cat": pytest.approx(0.5), "dog": pytest.approx(0.5)}
    assert metrics["support"] == {"cat": 2, "dog": 2}


def test_confusion_rows_are_actual_and_columns_predicted():
    # Three cats, one dog; two cats are called dogs, the dog is right.
    labels = [0, 0, 0, 1]
    probabilities = [0.9, 0.7, 0.2, 0.8]
    metrics = classification_metrics(labels, probabilities)
    assert metrics["confusion"] == {"cat_as_cat": 1, "cat_as_dog": 2, "dog_as_cat": 0, "dog_as_dog": 1}
    assert confusion_counts(labels, [1, 1, 0, 1]).tolist() == [[1, 2], [0, 1]]
    assert metrics["precision"]["dog"] == pytest.approx(1 / 3)
    assert metrics["recall"]["cat"] == pytest.approx(1 / 3)


def test_threshold_decides_the_predicted_class():
    metrics = classification_metrics([0, 1], [0.55, 0.65], threshold=0.6)
    assert metrics["accuracy"] == 1.0
    assert classification_metrics([0, 1], [0.55, 0.65], threshold=0.5)["accuracy"] == 0.5


def test_clipping_bounds_the_log_loss():
    clipped = clip_probabilities([0.0, 1.0, 0.5], 0.005)
    assert clipped.tolist() == [0.005, 0.995, 0.5]
    # A certain, wrong answer costs -log(clip), not infinity.
    metrics = classification_metrics([1], clip_probabilities([0.0], 0.005))
    assert metrics["log_loss"] == pytest.approx(-math.log(0.005))
    assert math.isnan(metrics["roc_auc"])  # one class only: undefined


@pytest.mark.parametrize("clip", [0.0, 0.5, -0.1])
def test_clip_out_of_range_is_refused(clip):
    with pytest.raises(ValueError, match="clip"):
        clip_probabilities([0.5], clip)


def test_nan_predictions_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        clip_probabilities([0.5, float("nan")], 0.01)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="3 labels but 2 predictions"):
        classification_metrics([0, 1, 1], [0.2, 0.8])


def test_roc_points_run_from_origin_to_corner():
    points = roc_points([0, 0, 1, 1, 0, 1], [0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    assert (points[0]["fpr"], points[0]["tpr"]) == (0.0, 0.0)
    assert (points[-1]["fpr"], points[-1]["tpr"]) == (1.0, 1.0)
    assert all(0 <= p["threshold"] <= 1 for p in points)
    assert [p["fpr"] for p in points] == sorted(p["fpr"] for p in points)


def test_best_model_has_the_lowest_log_loss():
    metrics = {"scratch": {"log_loss": 0.4}, "top": {"log_loss": 0.2}, "finetune": {"log_loss": 0.3}}
    assert best_model(metrics) == "top"
    with pytest.raises(ValueError, match="evaluate"):
        best_model({})


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A tiny workspace after the evaluate stage ran (in-process, from its folder)."""
    from catsdogs.stages import evaluate

    root = make_workspace(tmp_path_factory.mktemp("evaluate"))
    with contextlib.chdir(root):  # main() reads params.yaml and writes its outputs in the working directory
        evaluate.main()
    return root


def test_evaluate_writes_metrics_for_every_model(evaluated):
    metrics = json.loads((evaluated / "reports/evaluate/metrics.json").read_text())
    assert set(metrics) == {"scratch", "top", "finetune", "ensemble"}
    for values in metrics.values():
        assert values["n"] == 12
        assert 0 <= values["accuracy"] <= 1
        assert values["log_loss"] > 0
        assert sum(values["confusion"].values()) == 12
    for name in metrics:
        roc = pd.read_csv(evaluated / f"reports/evaluate/roc/{name}.csv")
        assert list(roc.columns) == ["fpr", "tpr", "threshold"]


def test_predictions_table_matches_the_models(evaluated):
    from catsdogs.models.files import load_model

    table = pd.read_csv(evaluated / "reports/evaluate/predictions.csv")
    assert list(table.columns) == [
        "file", "label", "actual",
        "p_scratch", "scratch_predicted", "p_top", "top_predicted", "p_finetune", "finetune_predicted",
        "p_ensemble", "ensemble_predicted",
    ]
    # The ensemble is the mean P(dog) of the three models (none of them near the clip bounds here).
    means = table[["p_scratch", "p_top", "p_finetune"]].mean(axis=1)
    np.testing.assert_allclose(table["p_ensemble"], means, atol=2e-6)
    assert table["file"].tolist()[:2] == ["cats/cat.0.jpg", "cats/cat.1.jpg"]
    assert (table["label"] == (table["actual"] == "dog")).all()
    # The top model's row for a file comes from that file's feature row, whatever the .npy order.
    top = load_model(evaluated / "models/top.keras")
    for name in ("cats/cat.3.jpg", "dogs/dog.5.jpg"):
        expected = float(top.predict(features_of(evaluated, name)[np.newaxis], verbose=0)[0, 0])
        assert table.set_index("file").loc[name, "p_top"] == pytest.approx(np.clip(expected, 0.005, 0.995), abs=1e-6)
    # Metrics and table agree.
    metrics = json.loads((evaluated / "reports/evaluate/metrics.json").read_text())
    accuracy = float((table["scratch_predicted"] == table["actual"]).mean())
    assert metrics["scratch"]["accuracy"] == pytest.approx(accuracy)


def test_metrics_agree_with_the_predictions_table(evaluated):
    """Log loss, ROC AUC, accuracy and confusion recomputed from predictions.csv with plain numpy."""
    table = pd.read_csv(evaluated / "reports/evaluate/predictions.csv")
    metrics = json.loads((evaluated / "reports/evaluate/metrics.json").read_text())
    labels = table["label"].to_numpy().astype(int)
    for name, values in metrics.items():
        p = table[f"p_{name}"].to_numpy()
        log_loss = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
        assert values["log_loss"] == pytest.approx(log_loss, abs=1e-5), name
        dogs, cats = p[labels == 1], p[labels == 0]
        pairs = (dogs[:, None] > cats[None, :]).sum() + 0.5 * (dogs[:, None] == cats[None, :]).sum()
        assert values["roc_auc"] == pytest.approx(pairs / (len(dogs) * len(cats)), abs=1e-6), name
        predicted = (table[f"{name}_predicted"] == "dog").to_numpy()
        assert values["accuracy"] == pytest.approx(np.mean(predicted == labels.astype(bool)), abs=1e-6), name
        assert values["confusion"] == {
            "cat_as_cat": int(np.sum(~predicted & (labels == 0))), "cat_as_dog": int(np.sum(predicted & (labels == 0))),
            "dog_as_cat": int(np.sum(~predicted & (labels == 1))), "dog_as_dog": int(np.sum(predicted & (labels == 1))),
        }, name


def test_stale_features_are_refused(tmp_path, monkeypatch):
    from catsdogs.stages.evaluate import main

    root = make_workspace(tmp_path, with_test=False)
    (root / "data/validation/dogs/dog.0.jpg").rename(root / "data/validation/dogs/dog.99.jpg")
    monkeypatch.chdir(root)
    with pytest.raises(ValueError, match="rerun extract_features"):
        main()


def test_missing_models_are_skipped_but_none_is_an_error(tmp_path, monkeypatch):
    from catsdogs.stages.evaluate import main

    root = make_workspace(tmp_path, with_test=False)
    monkeypatch.chdir(root)
    (root / "models/finetune.keras").unlink()
    (root / "models/top.keras").unlink()
    main()
    metrics = json.loads((root / "reports/evaluate/metrics.json").read_text())
    table = pd.read_csv(root / "reports/evaluate/predictions.csv")
    assert list(metrics) == ["scratch"]
    assert "p_finetune" not in table.columns
    (root / "models/scratch.keras").unlink()
    with pytest.raises(ValueError, match="no trained model"):
        main()
