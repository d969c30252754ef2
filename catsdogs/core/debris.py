"""What a killed stage left behind, removed when the stage next starts.

Every temporary file or folder a stage makes lies beside the output it becomes (or
feeds) and is named ``.<output name>.<pid>.<random>.tmp...`` (:func:`catsdogs.core.io.temporary_prefix`),
so its owner can be told from its name: when the stage starts again, each of its
declared outputs (dvc.yaml's ``outs`` and ``metrics``, ``${...}`` filled in from params.yaml) has
the debris next to it, and inside it when it is a folder, removed -- but only where
the process that made it is gone. Another running stage's temporaries (a live pid)
are never touched; names from before the pid was part of them (``.download-*``,
``.split-normalized-*``, ``.<name>.<random>.tmp*``) are removed when older than
the stage's start.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

from catsdogs.core.io import remove_path
from catsdogs.core.params_yaml import DEFAULT_PARAMS_FILE, parse_params

logger = logging.getLogger("debris")

DVC_FILE = "dvc.yaml"
_RANDOM = r"[a-z0-9_]{8}"  # tempfile's random part
# Temporary folders named before pids were part of the names: (stage, prefix).
LEGACY_PREFIXES = (("download", ".download-"), ("split", ".split-normalized-"))


def _owned_pattern(name: str) -> re.Pattern:
    """Temporaries for an output called ``name``: with the maker's pid, or the older pid-less form."""
    return re.compile(rf"^\.{re.escape(name)}\.(?:(?P<pid>\d+)\.{_RANDOM}|{_RANDOM})\.tmp")


_ANY_OWNED = re.compile(rf"^\..+\.(?P<pid>\d+)\.{_RANDOM}\.tmp")


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def process_alive_since(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch; 0.0 where unknown), or None if it is gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # another user's: alive
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0  # no /proc: alive, start unknown
    if fields[0] in ("Z", "X"):  # killed, not yet reaped
        return None
    boot = _boot_time()
    if boot is None:
        return 0.0
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def is_debris(entry: Path, pid: str | None, started: float) -> bool:
    """Whether a temporary is abandoned: its maker is gone (or younger than it), or it is pid-less and old."""
    try:
        made = entry.lstat().st_mtime
    except OSError:
        return False
    if pid is None:
        return made < started
    if int(pid) == os.getpid():
        return False
    alive_since = process_alive_since(int(pid))
    return alive_since is None or alive_since > made + 1.0  # the pid now names a later process


def debris_near(output: Path, stage: str, started: float) -> list[Path]:
    """The abandoned temporaries next to ``output`` (or in a folder above it, where its folder did not
    exist yet: a relative output's lie inside the repository) and inside it when it is a folder."""
    found = []
    pattern = _owned_pattern(output.name)
    for folder in output.parents if not output.is_absolute() else [output.parent]:
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            match = pattern.match(entry.name)
            if match and is_debris(entry, match["pid"], started):
                found.append(entry)
            elif any(stage == owner and entry.name.startswith(prefix) for owner, prefix in LEGACY_PREFIXES):
                if is_debris(entry, None, started):
                    found.append(entry)
    if output.is_dir() and not output.is_symlink():
        for entry in output.iterdir():
            match = _ANY_OWNED.match(entry.name)
            if match and is_debris(entry, match["pid"], started):
                found.append(entry)
    return found


# DVC's interpolation of a string value: ``${key.path}`` looked up in params.yaml (dvc/parsing/interpolate.py).
_INTERPOLATION = re.compile(r"\$\{\s*([A-Za-z0-9_.-]+)\s*\}")


def interpolate(value: str, params: dict) -> str:
    """``value`` with each ``${dotted.key}`` replaced by that key's value in ``params``, as DVC resolves it;
    ``KeyError`` naming a key params.yaml lacks. (Not DVC's own resolver: importing dvc in a stage process
    sets up its logging and wraps sys.stderr, which breaks the progress bars; a test proves the two agree
    on every stage of dvc.yaml.)"""

    def lookup(match: re.Match) -> str:
        node = params
        for part in match[1].split("."):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(match[1])
            node = node[part]
        return str(node)

    return _INTERPOLATION.sub(lookup, value)


def declared_outputs(stage: str, dvc_file: str | Path = DVC_FILE, params_file: str | Path = DEFAULT_PARAMS_FILE) -> list[Path]:
    """The stage's ``outs`` and ``metrics`` in dvc.yaml, both files read as DVC reads YAML and every ``${...}``
    filled in from params.yaml (:func:`interpolate`)."""
    definition = parse_params(Path(dvc_file).read_text(encoding="utf-8"), str(dvc_file))
    stage_definition = definition.get("stages", {}).get(stage, {})
    entries = [*stage_definition.get("outs", []), *stage_definition.get("metrics", [])]
    params = parse_params(Path(params_file).read_text(encoding="utf-8"), str(params_file))
    return [Path(interpolate(entry if isinstance(entry, str) else next(iter(entry)), params)) for entry in entries]


def remove_debris(stage: str, outputs: Iterable[Path] | None = None, started: float | None = None) -> list[Path]:
    """Remove what a killed run of ``stage`` left near its outputs; return what was removed.

    ``outputs`` default to the stage's declared ones; nothing happens outside a
    pipeline checkout (no dvc.yaml) or with params that do not load (the stage reports those).
    """
    started = time.time() if started is None else started
    if outputs is None:
        if not Path(DVC_FILE).is_file():
            return []
        try:
            outputs = declared_outputs(stage)
        except (ValueError, OSError, KeyError, AttributeError, TypeError):  # the stage reports bad files
            return []
    removed = []
    found = [entry for output in outputs for entry in debris_near(Path(output), stage, started)]
    for entry in dict.fromkeys(found):
        try:
            remove_path(entry)
        except OSError as error:
            logger.warning("could not remove %s left by an interrupted run: %s", entry, error)
            continue
        removed.append(entry)
    if removed:
        logger.info("removed %d temporary file(s) left by an interrupted run: %s",
                    len(removed), ", ".join(map(str, removed)))
    return removed
