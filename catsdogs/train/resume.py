"""Resuming a killed training run from its last finished epoch.

At the end of every epoch the training state -- the model's weights with the
optimizer's state, the history so far and early stopping's state (best value,
patience count, best weights) -- is written atomically to a new folder
``epoch-NNNN`` under the stage's backup folder (``paths.backups``, outside every
DVC output), and the previous epoch's folder is removed. A run that starts with
a backup restores it and trains on from the next epoch, so its history lists
each epoch once. The backup folder's name holds a hash of the stage, its params,
the bytes of its data, the pipeline's code and the Keras/TensorFlow versions: any
change starts from scratch (and removes the stale backup). The backup is removed
once the stage has written its outputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import numpy as np

from catsdogs.core.debris import remove_debris
from catsdogs.core.io import atomic_path, remove_path

logger = logging.getLogger("resume")

CODE_ROOT = Path(__file__).resolve().parents[1]  # the catsdogs package: every module the stages run
STATE_FILE = "state.json"
WEIGHTS_FILE = "model.weights.h5"  # Keras saves the optimizer's variables with the model's
BEST_WEIGHTS_FILE = "best_weights.npz"
_EPOCH_FOLDER = re.compile(r"^epoch-(\d{4,})$")


def _hash_files(digest, root: Path, files) -> None:
    for file in files:
        digest.update(str(file.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())


def backup_key(stage: str, params: dict, data: list[str | Path]) -> str:
    """A hash of what a run's result depends on: stage, params, the bytes of ``data`` (folders or files),
    the code, the library versions."""
    import keras
    import tensorflow as tf

    digest = hashlib.sha256()
    settings = {"stage": stage, "params": params, "keras": keras.__version__, "tensorflow": tf.__version__}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    _hash_files(digest, CODE_ROOT, sorted(CODE_ROOT.rglob("*.py")))
    for path in map(Path, data):  # folders (every file in them) or files
        digest.update(f"\0data {path.name}\0".encode())
        if path.is_file():
            _hash_files(digest, path.parent, [path])
        else:
            _hash_files(digest, path, sorted(p for p in path.rglob("*") if p.is_file()))
    return digest.hexdigest()[:16]


class Backup:
    """The backup folder of one stage run (``<backups>/<stage>-<key>``)."""

    def __init__(self, backups: str | Path, stage: str, key: str) -> None:
        self.root = Path(backups)
        self.stage = stage
        self.folder = self.root / f"{stage}-{key}"

    def remove_stale(self) -> None:
        """Remove this stage's backups made with other params, data or code, and a killed write's debris."""
        if self.root.is_dir():
            for other in self.root.glob(f"{self.stage}-*"):
                if other != self.folder:
                    logger.info("removing %s: made with other params, data or code", other)
                    remove_path(other)
        if self.folder.is_dir():
            for snapshot in self.snapshots():
                remove_debris(self.stage, outputs=[snapshot])

    def snapshots(self) -> list[Path]:
        """The complete epoch folders, oldest first."""
        if not self.folder.is_dir():
            return []
        found = [(int(m[1]), p) for p in self.folder.iterdir() if (m := _EPOCH_FOLDER.match(p.name))]
        return [path for _, path in sorted(found)]

    def latest(self) -> tuple[Path, dict] | None:
        """The newest snapshot and its state, or None."""
        snapshots = self.snapshots()
        if not snapshots:
            return None
        try:
            return snapshots[-1], json.loads((snapshots[-1] / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(
                f"cannot resume from {snapshots[-1]} ({error}); remove {self.folder} to train from the start"
            ) from error

    def save(self, model, epochs_done: int, history: dict, early_stopping) -> None:
        """Write the state after ``epochs_done`` epochs as a new snapshot; drop the older ones."""
        target = self.folder / f"epoch-{epochs_done:04d}"
        with atomic_path(target) as temporary:
            temporary.mkdir(parents=True)
            model.save_weights(temporary / WEIGHTS_FILE)
            state = {"epochs_done": epochs_done, "history": history, "stopped": bool(model.stop_training)}
            if early_stopping is not None:
                state["early_stopping"] = {
                    "wait": early_stopping.wait, "stopped_epoch": early_stopping.stopped_epoch,
                    "best": None if early_stopping.best is None else float(early_stopping.best),
                    "best_epoch": early_stopping.best_epoch,
                }
                if early_stopping.best_weights is not None:
                    np.savez(temporary / BEST_WEIGHTS_FILE, *early_stopping.best_weights)
            (temporary / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")
        for older in self.snapshots()[:-1]:
            remove_path(older)

    def remove(self) -> None:
        """Delete the backup (the stage has written its outputs)."""
        remove_path(self.folder)
        if self.root.is_dir() and not any(self.root.iterdir()):
            self.root.rmdir()


def resume_backup(backups: str | Path | None, stage: str, settings: dict, data: list[str | Path]) -> Backup | None:
    """The stage's resume backup for these settings and data (stale ones removed); None without ``backups``."""
    if backups is None:
        return None
    backup = Backup(backups, stage, backup_key(stage, settings, data))
    backup.remove_stale()
    return backup


def backup_callback(backup: Backup, early_stopping):
    """A Keras callback that saves each epoch to ``backup`` and restores the newest snapshot when training
    begins (it must come after ``early_stopping`` among fit's callbacks). ``initial_epoch``: pass it to fit;
    ``history``: every epoch's logs, restored ones included."""
    import keras

    class TrainingBackup(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            found = backup.latest()
            self.snapshot, self.state = found if found else (None, {"epochs_done": 0, "history": {}})
            self.history = {key: list(values) for key, values in self.state["history"].items()}
            self.resumed_from_epoch = self.state["epochs_done"]
            self.stopped = bool(self.state.get("stopped"))

        def on_train_begin(self, logs=None) -> None:
            if self.snapshot is None:
                return
            logger.info("resuming from %s: %d epoch(s) done", self.snapshot, self.resumed_from_epoch)
            if self.model.optimizer is not None and not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)
            try:
                self.model.load_weights(self.snapshot / WEIGHTS_FILE)
            except Exception as error:  # h5py, Keras: many types for a damaged file
                raise ValueError(
                    f"cannot resume from {self.snapshot} ({type(error).__name__}: {error}); "
                    f"remove {backup.folder} to train from the start"
                ) from error
            stopping = self.state.get("early_stopping")
            if early_stopping is not None and stopping is not None:
                for name, value in stopping.items():
                    setattr(early_stopping, name, value)
                if (self.snapshot / BEST_WEIGHTS_FILE).is_file():
                    with np.load(self.snapshot / BEST_WEIGHTS_FILE) as arrays:
                        early_stopping.best_weights = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]

        def on_epoch_end(self, epoch, logs=None) -> None:
            for key, value in (logs or {}).items():
                self.history.setdefault(key, []).append(float(value))
            try:
                backup.save(self.model, epoch + 1, self.history, early_stopping)
            except OSError as error:  # a full disk must not end the training the backup is for
                logger.warning("could not back up epoch %d (%s): a kill now restarts from the last backup",
                               epoch + 1, error)

    return TrainingBackup()


def fit_resumable(model, backup: Backup | None, early_stopping, *, epochs: int, callbacks: list, **fit_args):
    """``model.fit`` for ``epochs`` with ``early_stopping`` first among the callbacks, resuming from
    ``backup`` (None: no backup); returns every epoch's history and the epochs it resumed after (0: none)."""
    callbacks = [early_stopping, *callbacks]
    resumed = None
    if backup is not None:
        resumed = backup_callback(backup, early_stopping)  # after early stopping: restores its state
        callbacks.append(resumed)
    initial_epoch = 0 if resumed is None else (epochs if resumed.stopped else resumed.resumed_from_epoch)
    history = model.fit(epochs=epochs, initial_epoch=initial_epoch, callbacks=callbacks, **fit_args)
    if resumed is None:
        return history.history, 0
    return resumed.history, resumed.resumed_from_epoch
