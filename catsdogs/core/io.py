"""Atomic output helpers: every output is written beside its target, then moved in.

A stage killed half-way leaves either the previous output or none, never a
half-written file that looks whole (os.replace is atomic on one file system).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

# File names inside a stage's reports folder (paths.*_reports); dvc.yaml declares the same names.
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
LIVE_FOLDER = "live"
PREDICTIONS_FILE = "predictions.csv"
ROC_FOLDER = "roc"
METRIC_DECIMALS = 6
KERAS_WEIGHTS_SUFFIX = ".weights.h5"  # the names Keras saves weights under


def temporary_prefix(target: str | Path) -> str:
    """The name prefix of this process's temporaries for ``target``: ``.<name>.<pid>.``.

    The pid tells a later run whether the maker is gone (:mod:`catsdogs.core.debris`).
    """
    return f".{Path(target).name}.{os.getpid()}."


def _temporary_sibling(target: Path, suffix: str = "") -> Path:
    """A fresh, unused path in the target's folder (same file system as the target)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=temporary_prefix(target), suffix=f".tmp{suffix}", dir=target.parent)
    os.close(handle)
    os.unlink(name)
    return Path(name)


# What a path that is not a regular file is, by its file-type bits (links followed).
_FILE_KINDS = (
    (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """What a file of st_mode ``mode`` is, in words ("a regular file", "a FIFO (named pipe)", ...)."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")


def describe_non_file(path: str | Path) -> str:
    """Why ``path``, which is not a regular file (links followed), cannot be read: absent, or what it is."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "a symbolic link to nothing (no such file)" if path.is_symlink() else "no such file"
    except OSError as error:  # a link loop, a name too long, no permission...
        return f"cannot be read ({error.strerror or type(error).__name__})"
    return f"not a regular file: {file_kind(mode)}"


def remove_path(path: str | Path) -> None:
    """Delete a file, link or folder if it exists."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


# Errors that mean the place is the problem, not the data: reported naming the output, in words.
_PLACE_ERRORS = {
    errno.ENOSPC: "no space left on the device holding {target}",
    errno.EDQUOT: "no space left (disk quota exceeded) for {target}",
    errno.EROFS: "cannot write {target}: its file system is read-only",
    errno.EACCES: "cannot write {target}: permission denied",
    errno.EPERM: "cannot write {target}: operation not permitted",
}


class PlaceError(OSError):
    """A full disk or an unwritable place, named by the output that was being written."""


@contextlib.contextmanager
def naming_errors(target: str | Path) -> Iterator[None]:
    """Turn a full disk or an unwritable place while writing ``target`` into a :class:`PlaceError` naming it."""
    try:
        yield
    except PlaceError:
        raise
    except OSError as error:
        message = _PLACE_ERRORS.get(error.errno)
        if message is None:
            raise
        raise PlaceError(error.errno, message.format(target=target)) from error


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write (a file or a folder); move it onto target on success.

    The temporary path keeps the target's suffix (Keras checks ``.keras`` and
    ``.weights.h5``). On an exception the temporary path is removed and the target is
    left untouched.
    """
    target = Path(target)
    suffix = KERAS_WEIGHTS_SUFFIX if target.name.endswith(KERAS_WEIGHTS_SUFFIX) else target.suffix
    with naming_errors(target):
        temporary = _temporary_sibling(target, suffix=suffix)
    try:
        with naming_errors(target):
            yield temporary
        if not temporary.exists():
            raise FileNotFoundError(f"nothing was written for {target}")
        if target.is_dir() and not target.is_symlink():
            # os.replace cannot replace a non-empty folder: move the old one aside first.
            old = _temporary_sibling(target, suffix=".old")
            os.replace(target, old)
            os.replace(temporary, target)
            remove_path(old)
        else:
            os.replace(temporary, target)
    finally:
        remove_path(temporary)


def link_or_copy(source: str | Path, target: str | Path) -> None:
    """Make ``target`` a hard link to ``source`` (no second copy on disk), or a copy where links fail.

    Only for files no stage ever modifies in place (every stage writes new files and
    moves them in), so the two names can safely share their bytes.
    """
    try:
        os.link(source, target)
    except OSError:  # another file system, or one without hard links
        shutil.copyfile(source, target)


def file_hash(path: str | Path, algorithm: str = "sha256") -> str:
    """A file's digest (hex), read in chunks."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, algorithm).hexdigest()


def write_text(target: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(target) as temporary:
        temporary.write_text(text, encoding="utf-8")


def metrics_for_json(value):
    """Metrics ready for a metrics file: floats rounded to 6 decimals (no last-bit noise in
    ``dvc metrics diff``), NaN and infinities (undefined) as null, nested mappings and lists
    alike, numpy scalars as plain numbers."""
    if isinstance(value, dict):
        return {key: metrics_for_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [metrics_for_json(item) for item in value]
    if type(value).__module__ == "numpy" and hasattr(value, "item"):  # np.float32, np.int64, np.bool_
        value = value.item()
    if isinstance(value, float):
        return round(value, METRIC_DECIMALS) if math.isfinite(value) else None
    return value


def write_json(target: str | Path, data: object) -> None:
    """Write JSON atomically (sorted keys, indented, trailing newline: stable diffs)."""
    write_text(target, json.dumps(data, indent=2, sort_keys=True) + "\n")
