"""A training run's progress while it runs: each epoch's figures logged with dvclive as the epoch ends.

:func:`live_callback` gives a Keras callback that, at the end of every epoch, logs the
epoch's loss, accuracy, val_loss and val_accuracy with dvclive into ``<reports>/live/``
and writes ``<reports>/live/metrics.json`` (atomically: a reader never sees half a file)
in dvclive's layout: ``step`` (Keras' epoch index, from 0: a run resumed from a backup
continues the count), ``epoch`` (epochs finished, numbered as in history.csv) and the
latest ``train`` and ``eval`` loss and accuracy. dvc.yaml declares that file as a metric
of the training stage, so ``dvc metrics show`` and ``dvc exp show`` show a long run's
progress while ``dvc exp run`` (or ``dvc repro``) runs it.

When training ends, :func:`catsdogs.train.training.write_training_reports` writes the file
once more from the whole history (:func:`live_summary`): the same content, and the file
exists also when no epoch ran (``finetune.epochs: 0``, a resumed run that had finished).
Only per-epoch values go to the summary: no per-epoch ``.tsv`` (history.csv holds the
curves), no dvc.yaml, report or experiment of dvclive's own (DVC runs the stage).

Not ``dvclive.keras.DVCLiveCallback``: it counts steps from 0 in every process (a resumed
run would restart at step 0), logs every key Keras reports with a ``.tsv`` per metric (a
second history.csv), and writes metrics.json in place.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
import tempfile
from pathlib import Path

from catsdogs.core.io import LIVE_FOLDER, METRICS_FILE, metrics_for_json, remove_path, write_json
from catsdogs.train.training import HISTORY_COLUMNS


def metric_name(column: str) -> str:
    """dvclive's name for a Keras history column: ``val_loss`` -> ``eval/loss``, ``loss`` -> ``train/loss``."""
    return ("eval/" if column.startswith("val_") else "train/") + column.removeprefix("val_")


def epoch_metrics(epoch_index: int, logs: dict) -> dict[str, float | int]:
    """What is logged for the epoch of 0-based ``epoch_index``: ``epoch`` (1-based) and history.csv's columns
    present in Keras' ``logs``, by their dvclive names."""
    logged: dict[str, float | int] = {"epoch": epoch_index + 1}
    for column in HISTORY_COLUMNS:
        if logs.get(column) is not None:
            logged[metric_name(column)] = float(logs[column])
    return logged


def _undefined_as_null(value):
    """dvclive keeps NaN and infinities as the strings "nan", "inf", "-inf"; metrics files hold null."""
    if isinstance(value, dict):
        return {key: _undefined_as_null(item) for key, item in value.items()}
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return None
    return value


def live_summary(history: dict[str, list[float]]) -> dict:
    """``live/metrics.json`` after the last epoch of ``history`` (a Keras ``History.history``): what
    :func:`live_callback` wrote after that epoch; ``{"epoch": 0}`` when no epoch ran."""
    epochs = len(history.get("loss", []))
    if not epochs:
        return {"epoch": 0}
    last = {column: values[epochs - 1] for column, values in history.items() if len(values) >= epochs}
    summary: dict = {"step": epochs - 1}
    for name, value in epoch_metrics(epochs - 1, last).items():
        *folders, leaf = name.split("/")  # nested as dvclive nests them: train/loss -> {"train": {"loss": ...}}
        target = summary
        for folder in folders:
            target = target.setdefault(folder, {})
        target[leaf] = value
    return metrics_for_json(summary)


def write_live_summary(reports_dir: str | Path, history: dict[str, list[float]]) -> None:
    """Write :func:`live_summary` as ``<reports_dir>/live/metrics.json``, atomically."""
    write_json(Path(reports_dir) / LIVE_FOLDER / METRICS_FILE, live_summary(history))


def live_callback(reports_dir: str | Path):
    """A Keras callback that logs each epoch as it ends into ``<reports_dir>/live/`` (dvclive's
    ``metrics.json``, written atomically). Make it before training starts: dvclive is set up from a
    folder outside any repository (its Git/DVC integration fails in a repository without commits,
    treeverse/dvclive#522), which changes the working directory for a moment.

    Its ``on_epoch_end(epoch, logs)`` and ``on_train_end()`` may also be called from a custom training
    loop (:mod:`catsdogs.train.multiworker`): they use no model.

    dvclive imports dvc, whose set-up wraps ``sys.stdout`` and ``sys.stderr`` (``colorama.init``); the
    stage's own streams are put back, so its log lines and Keras' progress bar print as before."""
    streams = sys.stdout, sys.stderr
    try:
        return _live_callback(reports_dir)
    finally:
        sys.stdout, sys.stderr = streams


def _live_callback(reports_dir: str | Path):
    import keras
    from dvclive import Live

    class AtomicLive(Live):
        """dvclive's Live, its summary written whole (atomically) and with undefined values as null."""

        def make_summary(self) -> None:
            if self.summary:  # an epoch was logged, so the step was set (else {}, as dvclive writes it)
                self.summary["step"] = self.step
            write_json(self.metrics_file, metrics_for_json(_undefined_as_null(self.summary)))

    live_dir = (Path(reports_dir) / LIVE_FOLDER).resolve()

    class LiveMetrics(keras.callbacks.Callback):
        """Logs loss, accuracy, val_loss and val_accuracy at each epoch's end, at step = Keras' epoch index."""

        def __init__(self) -> None:
            super().__init__()
            with tempfile.TemporaryDirectory() as outside, contextlib.chdir(outside):
                self.live = AtomicLive(dir=str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None)

        def on_epoch_end(self, epoch, logs=None) -> None:
            self.live.step = epoch  # from Keras: a resumed run (initial_epoch k) goes on at step k
            for name, value in epoch_metrics(epoch, logs or {}).items():
                self.live.log_metric(name, value, plot=False)
            self.live.next_step()  # writes metrics.json (and tells DVC's VS Code extension a step ended)

        def on_train_end(self, logs=None) -> None:
            self.live.end()

    return LiveMetrics()


@contextlib.contextmanager
def discarded_on_failure(reports_dir: str | Path):
    """Around a training stage: when it fails (bad input, a run at chance with ``common.fail_at_chance``,
    Ctrl-C), the progress file its epochs wrote is removed with the folders made for it, so a failed stage
    leaves no output behind (its reports are written only at the end, :func:`save_outputs`)."""
    live_dir = Path(reports_dir) / LIVE_FOLDER
    made = [folder for folder in (live_dir, *live_dir.parents) if not folder.exists()]
    try:
        yield
    except BaseException:
        remove_path(live_dir)
        for folder in made[1:]:  # the reports folder and those above it that the live file needed, deepest first
            try:
                folder.rmdir()
            except OSError:  # not empty: something else is in it
                break
        raise


def discards_progress_on_failure(stage):
    """Decorate a training stage function taking ``files`` (a :class:`catsdogs.train.training.TrainingFiles`):
    it runs inside :func:`discarded_on_failure` of ``files.reports``."""
    signature = inspect.signature(stage)

    @functools.wraps(stage)
    def run(*args, **kwargs):
        files = signature.bind(*args, **kwargs).arguments["files"]
        with discarded_on_failure(files.reports):
            return stage(*args, **kwargs)

    return run
