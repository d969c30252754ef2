"""Safe-mode loading through every entry point that loads models: evaluate, submission, ``catsdogs predict``.

A ``.keras`` file with a ``Lambda`` layer (arbitrary Python code), a corrupt
``.keras`` file, one padded with members that would unpack to far more than the
file (refused by the project's archive limits before Keras unpacks anything) and
one naming a layer class that exists nowhere are each refused with the project's one-line message (exit code 1),
never loaded, never a traceback.
"""

from __future__ import annotations

import json
import logging
import shutil
import zipfile
from pathlib import Path

import pytest

from catsdogs.cli import EXIT_ERROR
from catsdogs.cli import main as cli_main
from catsdogs.core.runner import run_stage
from catsdogs.models.files import save_model
from tests.tiny_models import lambda_image_model, make_workspace, write_corrupt_model

LAMBDA_REFUSED = "Requested the deserialization of a `Lambda` layer"
CORRUPT_REFUSED = "Please ensure the file is an accessible `.keras` zip file"


@pytest.fixture(scope="module")
def base_workspace(tmp_path_factory) -> Path:
    """A project folder as evaluate finds it, with evaluate's metrics naming scratch the best model."""
    root = make_workspace(tmp_path_factory.mktemp("untrusted"))
    (root / "reports/evaluate").mkdir(parents=True)
    metrics = {"scratch": {"log_loss": 0.1}, "top": {"log_loss": 0.9}, "finetune": {"log_loss": 0.8}}
    (root / "reports/evaluate/metrics.json").write_text(json.dumps(metrics))
    save_model(lambda_image_model(), root / "lambda.keras")
    return root


PADDED_REFUSED = "over download.limits.max_ratio=200"
UNKNOWN_CLASS_REFUSED = "could not be deserialized properly"  # Keras' first line; the rest dumps the config
PAD_BYTES = 20 * 2**20  # zeros per padding member: what Keras would unpack to TMPDIR, times four


def pad_model(path: Path) -> None:
    """Add four members of zeros to a valid ``.keras`` file (a few KB compressed each): Keras unpacks
    every member of an archive with more than three before it reads any."""
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        for index in range(4):
            archive.writestr(f"assets/pad{index}", bytes(PAD_BYTES))


def unknown_class_model(path: Path) -> None:
    """Make the model in ``path`` name a layer class that exists nowhere (Keras' error quotes its whole config)."""
    with zipfile.ZipFile(path) as archive:
        entries = [(info.filename, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries:
            if name == "config.json":
                data = data.replace(b'"module": "keras.layers", "class_name": "Dense"',
                                    b'"module": null, "class_name": "NotARealLayer"', 1)
            archive.writestr(name, data)


@pytest.fixture(params=["lambda", "corrupt", "padded", "unknown_class"])
def hostile(request, base_workspace, tmp_path, monkeypatch):
    """A copy of the workspace whose models/scratch.keras is hostile; returns (root, expected message part)."""
    root = tmp_path / "project"
    shutil.copytree(base_workspace, root)
    if request.param == "lambda":
        shutil.copy(root / "lambda.keras", root / "models/scratch.keras")
        expected = LAMBDA_REFUSED
    elif request.param == "corrupt":
        write_corrupt_model(root / "models/scratch.keras")
        expected = CORRUPT_REFUSED
    elif request.param == "padded":
        pad_model(root / "models/scratch.keras")
        expected = PADDED_REFUSED
    else:
        unknown_class_model(root / "models/scratch.keras")
        expected = UNKNOWN_CLASS_REFUSED
    monkeypatch.chdir(root)
    return root, expected


def assert_one_line_refusal(caplog, stage: str, expected: str) -> None:
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1, [record.getMessage() for record in errors]
    message = errors[0].getMessage()
    assert message.startswith(f"{stage} failed: could not load the model models/scratch.keras: "), message
    assert expected in message
    assert "\n" not in message and errors[0].exc_info is None  # one line, no traceback


def test_evaluate_refuses_a_hostile_model(hostile, caplog):
    from catsdogs.stages import evaluate

    root, expected = hostile
    metrics_before = (root / "reports/evaluate/metrics.json").read_text()
    with caplog.at_level("INFO"), pytest.raises(SystemExit) as exit_info:
        run_stage("evaluate", evaluate.main)
    assert exit_info.value.code == 1
    assert_one_line_refusal(caplog, "evaluate", expected)
    assert not (root / "reports/evaluate/predictions.csv").exists()
    assert (root / "reports/evaluate/metrics.json").read_text() == metrics_before


def test_submission_refuses_a_hostile_model(hostile, caplog):
    from catsdogs.stages import submission

    root, expected = hostile
    with caplog.at_level("INFO"), pytest.raises(SystemExit) as exit_info:
        run_stage("submission", submission.main)
    assert exit_info.value.code == 1
    assert_one_line_refusal(caplog, "submission", expected)
    assert not (root / "reports/submission.csv").exists()


@pytest.mark.parametrize("model", ["models/scratch.keras", "scratch", "best", "ensemble"])
def test_catsdogs_predict_refuses_a_hostile_model(hostile, capsys, model):
    _, expected = hostile
    code = cli_main(["predict", "data/raw/test/1.jpg", "--model", model])
    out, err = capsys.readouterr()
    assert code == EXIT_ERROR
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("catsdogs predict: error: could not load the model models/scratch.keras: ")
    assert expected in lines[0]
    assert "Traceback" not in err
