"""The training reports every training stage writes (history.csv, live/metrics.json, metrics.json).

The integration tier's share (stages in subprocesses, dvc, training for seconds); the fast
tests, and what the module covers, are in tests/unit/test_training_reports.py.
"""

from __future__ import annotations

import json

from catsdogs.train.training import write_training_reports
from tests.conftest import run

HISTORY = {"loss": [0.7, 0.5], "accuracy": [0.5, 0.75], "val_loss": [0.69, 0.6], "val_accuracy": [0.5, 0.7]}


def test_reports_are_written_in_a_git_repository_without_commits(tmp_path, monkeypatch):
    """``git init && dvc init && dvc repro`` before the first commit: dvclive must not crash the stage."""
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        run(command, tmp_path)
    monkeypatch.chdir(tmp_path)
    write_training_reports("reports/scratch", HISTORY, {"epochs_run": 2})
    assert json.loads((tmp_path / "reports/scratch/metrics.json").read_text()) == {"epochs_run": 2}
    live = json.loads((tmp_path / "reports/scratch/live/metrics.json").read_text())
    assert live["eval"] == {"loss": 0.6, "accuracy": 0.7} and live["step"] == 1 and live["epoch"] == 2
    assert (tmp_path / "reports/scratch/history.csv").read_text().splitlines()[-1] == "2,0.5,0.75,0.6,0.7"
    assert sorted(path.name for path in tmp_path.iterdir()) == [".dvc", ".dvcignore", ".git", "reports"]


def test_the_per_epoch_callback_works_in_a_git_repository_without_commits(tmp_path, monkeypatch):
    """The same before the first commit, for the callback that logs each epoch during training (dvclive is
    set up there), as ``dvc repro`` runs it (DVC_ROOT set); it leaves nothing in the repository but its file."""
    from catsdogs.train.live import live_callback

    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        run(command, tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    callback = live_callback("reports/scratch")
    for epoch in range(2):
        callback.on_epoch_end(epoch, {column: values[epoch] for column, values in HISTORY.items()})
    callback.on_train_end()
    live = json.loads((tmp_path / "reports/scratch/live/metrics.json").read_text())
    assert live == {"step": 1, "epoch": 2, "train": {"loss": 0.5, "accuracy": 0.75},
                    "eval": {"loss": 0.6, "accuracy": 0.7}}
    assert sorted(path.name for path in tmp_path.iterdir()) == [".dvc", ".dvcignore", ".git", "reports"]
    assert not (tmp_path / ".dvc/tmp/exps/run/DVCLIVE_STEP_COMPLETED").exists()  # dvclive's signal, removed at the end
