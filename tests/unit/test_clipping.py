"""P(dog) is clipped to [prediction.clip, 1 - prediction.clip] in everything each stage writes.

The tiny models answer about 0.5; here two models are saturated by a huge output
bias (sigmoid(+-50) is within 1e-21 of 1 or 0 in float32), so only the clip keeps their answers
at exactly 0.005 and 0.995.
"""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pandas as pd
import pytest

from catsdogs.core.params import PredictionParams
from catsdogs.models.files import save_model
from catsdogs.predict.predictor import expand_inputs, predict_files
from tests.tiny_models import IMAGE_SIZE, make_workspace, saturated_image_model

CLIP = PredictionParams().clip
LOW, HIGH = CLIP, 1 - CLIP


def test_the_clip_is_the_documented_one():
    assert (LOW, HIGH) == (0.005, 0.995)


@pytest.fixture(scope="module")
def saturated(tmp_path_factory):
    """A workspace whose scratch model always says dog (1.0) and finetune always cat (0.0), raw."""
    root = make_workspace(tmp_path_factory.mktemp("clipping"))
    save_model(saturated_image_model(+50.0), root / "models/scratch.keras")
    save_model(saturated_image_model(-50.0), root / "models/finetune.keras")
    return root


@pytest.mark.parametrize("bias, expected", [(+50.0, HIGH), (-50.0, LOW)])
def test_predict_files_clips_a_saturated_model(saturated, bias, expected):
    model = saturated_image_model(bias)
    files = expand_inputs([saturated / "data/raw/test"])
    raw = model.predict(np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3), np.float32), verbose=0)[0, 0]
    assert min(raw, 1 - raw) < 1e-6  # saturated, far beyond the clip: the clip is what moves it
    results = predict_files(model, files, IMAGE_SIZE, 4, CLIP, 10**6)
    assert len(results) == 5
    assert [result.probability for result in results] == [expected] * 5


def test_evaluate_writes_clipped_predictions_and_scores_them(saturated, monkeypatch):
    from catsdogs.stages import evaluate

    monkeypatch.chdir(saturated)
    evaluate.main()
    table = pd.read_csv(saturated / "reports/evaluate/predictions.csv")
    assert table["p_scratch"].tolist() == [HIGH] * 12
    assert table["p_finetune"].tolist() == [LOW] * 12
    metrics = json.loads((saturated / "reports/evaluate/metrics.json").read_text())
    # Six cats called dogs with P(dog)=0.995 and six dogs with 0.995: the log loss is bounded by the clip.
    expected = -(6 * math.log(LOW) + 6 * math.log(HIGH)) / 12
    assert metrics["scratch"]["log_loss"] == pytest.approx(expected, abs=1e-6)
    assert metrics["finetune"]["log_loss"] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("best, expected", [("scratch", HIGH), ("finetune", LOW)])
def test_submission_is_clipped(saturated, monkeypatch, best, expected):
    from catsdogs.stages import submission

    (saturated / "reports/evaluate").mkdir(parents=True, exist_ok=True)
    losses = {"scratch": 0.9, "top": 0.9, "finetune": 0.9} | {best: 0.1}
    (saturated / "reports/evaluate/metrics.json").write_text(json.dumps({k: {"log_loss": v} for k, v in losses.items()}))
    monkeypatch.chdir(saturated)
    submission.main()
    rows = (saturated / "reports/submission.csv").read_text().splitlines()
    assert rows[0] == "id,label"
    assert [row.split(",")[1] for row in rows[1:]] == [f"{expected:.6f}"] * 5


@pytest.mark.parametrize("model, expected", [("scratch", HIGH), ("finetune", LOW)])
def test_catsdogs_predict_prints_clipped_probabilities(saturated, monkeypatch, capsys, model, expected):
    from catsdogs.cli import EXIT_OK, main

    monkeypatch.chdir(saturated)
    assert main(["predict", "data/raw/test", "--model", model, "--format", "csv"]) == EXIT_OK
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 5
    assert {float(row["p_dog"]) for row in rows} == {expected}
