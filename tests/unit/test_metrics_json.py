"""``io.metrics_for_json``: what a metrics file holds (6 decimals, null for undefined, nested values, numpy)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from catsdogs.core.io import METRIC_DECIMALS, metrics_for_json


def test_floats_are_rounded_to_six_decimals():
    assert METRIC_DECIMALS == 6
    assert metrics_for_json(0.123456789) == 0.123457
    assert metrics_for_json(1 / 3) == 0.333333
    assert metrics_for_json(2.0000004) == 2.0
    assert metrics_for_json(-0.0000004) == 0.0


@pytest.mark.parametrize("undefined", [float("nan"), float("inf"), float("-inf"), np.nan, np.float32("nan")])
def test_nan_and_infinities_become_null(undefined):
    assert metrics_for_json(undefined) is None
    assert json.dumps(metrics_for_json({"roc_auc": undefined})) == '{"roc_auc": null}'


def test_nested_mappings_and_lists_are_converted_throughout():
    value = {
        "a": {"b": {"c": 0.1234567, "d": float("nan")}},
        "points": [0.1111111, float("inf"), {"e": 0.9999999}],
        "pair": (0.5555557, 1),
    }
    assert metrics_for_json(value) == {
        "a": {"b": {"c": 0.123457, "d": None}},
        "points": [0.111111, None, {"e": 1.0}],
        "pair": [0.555556, 1],
    }


def test_ints_bools_strings_and_none_pass_unchanged():
    value = {"n": 12, "ok": True, "name": "scratch", "missing": None}
    converted = metrics_for_json(value)
    assert converted == value
    assert converted["ok"] is True and type(converted["n"]) is int


def test_numpy_scalars_become_plain_json_numbers():
    value = {"f64": np.float64(0.1234567), "f32": np.float32(0.25), "i64": np.int64(7), "b": np.bool_(True)}
    converted = metrics_for_json(value)
    assert converted == {"f64": 0.123457, "f32": 0.25, "i64": 7, "b": True}
    assert [type(item) for item in converted.values()] == [float, float, int, bool]
    json.dumps(converted)  # numpy scalars would raise TypeError here


def test_a_one_class_validation_split_gives_a_null_roc_auc(tmp_path):
    """Only cats scored (evaluate's folder reader refuses an empty class, so through the metrics it
    builds from): ROC AUC is undefined and written as null; the rest is scored."""
    from catsdogs.core.io import write_json
    from catsdogs.predict.metrics import classification_metrics, clip_probabilities

    scores = classification_metrics([0] * 6, clip_probabilities([0.1, 0.2, 0.3, 0.6, 0.0, 1.0], 0.005))
    assert math.isnan(scores["roc_auc"])
    write_json(tmp_path / "metrics.json", {"scratch": metrics_for_json(scores)})
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["scratch"]["roc_auc"] is None
    assert "NaN" not in (tmp_path / "metrics.json").read_text()  # strict JSON: DVC and browsers can read it
    assert written["scratch"]["n"] == 6
    assert written["scratch"]["accuracy"] == pytest.approx(4 / 6)
