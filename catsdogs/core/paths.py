"""Where the pipeline's outputs may go: every path param relative, inside the repository, apart from the
others and from what git tracks, so no stage deletes a file it does not own when it replaces its outputs."""

from __future__ import annotations

import posixpath
import subprocess
from pathlib import Path, PurePosixPath, PureWindowsPath

from ruamel.yaml import YAML, YAMLError

from catsdogs.core.param_errors import shorten

GIT_TIMEOUT_S = 30.0
# Path params a stage only reads (never deletes or writes): they may hold files git tracks (weights/README.md).
INPUT_PATHS = frozenset({"local_weights"})

# Paths that lie inside another path on purpose: the raw tree's train and test folders.
NESTED_PATHS = {("raw_train", "raw"), ("raw_test", "raw")}
# Folders no output may touch: git's and DVC's own.
RESERVED_FOLDERS = (".git", ".dvc")


def normalized_path(key: str, value: str) -> PurePosixPath:
    """``value`` as a clean relative path; ``ValueError`` naming ``paths.<key>`` unless it stays inside
    the repository."""
    where = f"paths.{key} ({shorten(repr(value))})"
    if PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute() or PureWindowsPath(value).drive:
        raise ValueError(f"{where} is absolute: give a path relative to the repository root")
    if value.startswith("~"):
        raise ValueError(f"{where} starts with '~': give a path relative to the repository root")
    if "\\" in value:
        raise ValueError(f"{where} contains a backslash: separate folders with '/'")
    normal = posixpath.normpath(value) if value else "."
    if normal == ".":
        raise ValueError(f"{where} is the repository root: give a file or folder inside it")
    if normal == ".." or normal.startswith("../"):
        raise ValueError(f"{where} leaves the repository: give a path inside it")
    if ".." in PurePosixPath(value).parts:
        raise ValueError(f"{where} contains '..': give a plain path inside the repository")
    path = PurePosixPath(normal)
    if path.parts[0] in RESERVED_FOLDERS:
        raise ValueError(f"{where} lies in {path.parts[0]}/, which git or DVC own")
    return path


def check_output_paths(paths: dict[str, str]) -> None:
    """Every path relative, inside the repository, not its root, distinct, none inside another
    (except :data:`NESTED_PATHS`); ``ValueError`` naming the key(s) otherwise."""
    normal = {key: normalized_path(key, value) for key, value in paths.items()}
    keys = list(normal)
    for i, first in enumerate(keys):
        for second in keys[i + 1:]:
            a, b = normal[first], normal[second]
            if a == b:
                raise ValueError(f"paths.{first} and paths.{second} are the same path ({a}): give each its own")
            for inner, outer in ((first, second), (second, first)):
                if normal[outer] in normal[inner].parents and (inner, outer) not in NESTED_PATHS:
                    raise ValueError(
                        f"paths.{inner} ({normal[inner]}) lies inside paths.{outer} ({normal[outer]}): "
                        "one stage's output would overwrite or delete the other's; give them separate places"
                    )


def _dvc_lock_outs(lock: Path) -> list[str]:
    """The ``outs`` paths dvc.lock records, for every stage; none when it is absent or unreadable
    (DVC itself refuses an unreadable one)."""
    try:
        data = YAML(typ="safe").load(lock.read_text(encoding="utf-8")) if lock.is_file() else None
    except (OSError, UnicodeDecodeError, YAMLError, RecursionError):
        return []
    stages = data.get("stages") if isinstance(data, dict) else None
    outs = []
    for stage in stages.values() if isinstance(stages, dict) else []:
        for out in stage.get("outs", []) if isinstance(stage, dict) else []:
            if isinstance(out, dict) and isinstance(out.get("path"), str):
                outs.append(posixpath.normpath(out["path"]))
    return outs


def _git_tracked(paths: list[str]) -> list[str] | None:
    """The files git tracks at or under ``paths`` (relative to the working directory); ``None`` outside a
    git work tree, without git, or when git fails or hangs (then nothing can be checked)."""
    try:
        result = subprocess.run(
            ["git", "--literal-pathspecs", "ls-files", "-z", "--", *paths],
            capture_output=True, timeout=GIT_TIMEOUT_S, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return [name for name in result.stdout.decode("utf-8", "surrogateescape").split("\0") if name]


def check_paths_untracked(paths, lock: str | Path = "dvc.lock") -> None:
    """Inside a git work tree (the working directory, the repository root stages run from): no path param
    but :data:`INPUT_PATHS` holds a file git tracks, except files at or under an output ``lock`` (dvc.lock)
    records (a committed ``cache: false`` report), so no stage deletes tracked files when it replaces its
    outputs; ``ValueError`` naming the key and one or two of the files otherwise. Outside a work tree, or
    without git, nothing is checked. Runs git once."""
    values = {
        key: normalized_path(key, value).as_posix()
        for key, value in paths.model_dump().items() if key not in INPUT_PATHS
    }
    tracked = _git_tracked(list(values.values()))
    if not tracked:
        return
    recorded = _dvc_lock_outs(Path(lock))
    unrecorded = [file for file in tracked if not any(file == out or file.startswith(out + "/") for out in recorded)]
    for key, value in values.items():
        files = [file for file in unrecorded if file == value or file.startswith(value + "/")]
        if files:
            shown = ", ".join(shorten(file) for file in files[:2]) + (f" and {len(files) - 2} more" if len(files) > 2 else "")
            raise ValueError(
                f"paths.{key} ({shorten(value)}) holds files git tracks ({shown}): the stage writing it would "
                "delete them; give a path git does not track"
            )
