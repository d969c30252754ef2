"""What killed runs left behind, removed when any stage next starts or by ``python -m catsdogs.stages --sweep``.

Every temporary file or folder a stage makes lies beside the output it becomes (or
feeds) and is named ``.<output name>.<pid>.<random>.tmp...`` (:func:`catsdogs.core.io.temporary_prefix`),
so its maker can be told from its name. When a stage starts, the debris next to every
stage's declared outputs (dvc.yaml's ``outs`` and ``metrics``, ``${...}`` filled in from
params.yaml), and inside them when they are folders, is removed -- but only where the
process that made it is gone: not only the starting stage's, because a stage that DVC
restores from its run cache, or finds unchanged, never starts, and its killed run's
temporaries would stay until it next ran. Another running stage's temporaries (a live pid)
are never touched. Names from before the pid was part of them (``.download-*``,
``.split-normalized-*``, ``.<name>.<random>.tmp*``) cannot be told apart from a running
stage's, so they are removed only near the starting stage's own outputs, and only when older
than its start. ``python -m catsdogs.stages --sweep`` (:func:`sweep_debris`) removes the
pid-named debris without running a stage: for a ``dvc repro`` in which nothing runs.
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


def _owned_pattern(name: str, pid_less: bool = True) -> re.Pattern:
    """Temporaries for an output called ``name``: with the maker's pid, or (``pid_less``) the older pid-less form."""
    legacy = f"|{_RANDOM}" if pid_less else ""
    return re.compile(rf"^\.{re.escape(name)}\.(?:(?P<pid>\d+)\.{_RANDOM}{legacy})\.tmp")


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


def debris_near(output: Path, stage: str | None, started: float) -> list[Path]:
    """The abandoned temporaries next to ``output`` (or in a folder above it, where its folder did not
    exist yet: a relative output's lie inside the repository) and inside it when it is a folder.

    ``stage``: the stage ``output`` belongs to when that stage is the one starting, so the pid-less older
    names (age-based) are its to remove too; None for only the names whose pid is gone."""
    found = []
    pattern = _owned_pattern(output.name, pid_less=stage is not None)
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


def _read_pipeline(dvc_file: str | Path, params_file: str | Path) -> tuple[dict, dict]:
    """dvc.yaml's ``stages`` and params.yaml, both read as DVC reads YAML."""
    definition = parse_params(Path(dvc_file).read_text(encoding="utf-8"), str(dvc_file))
    params = parse_params(Path(params_file).read_text(encoding="utf-8"), str(params_file))
    stages = definition.get("stages", {}) if isinstance(definition, dict) else None
    if not isinstance(stages, dict):
        raise ValueError(f"{dvc_file} holds no mapping of stages")
    if not isinstance(params, dict):
        raise ValueError(f"{params_file} is not a mapping")
    return stages, params


def _outputs_of(stage_definition: dict, params: dict) -> list[Path]:
    entries = [*stage_definition.get("outs", []), *stage_definition.get("metrics", [])]
    return [Path(interpolate(entry if isinstance(entry, str) else next(iter(entry)), params)) for entry in entries]


def declared_outputs(stage: str, dvc_file: str | Path = DVC_FILE, params_file: str | Path = DEFAULT_PARAMS_FILE) -> list[Path]:
    """The stage's ``outs`` and ``metrics`` in dvc.yaml, both files read as DVC reads YAML and every ``${...}``
    filled in from params.yaml (:func:`interpolate`)."""
    stages, params = _read_pipeline(dvc_file, params_file)
    return _outputs_of(stages.get(stage, {}), params)


_BAD_DEFINITION = (ValueError, KeyError, AttributeError, TypeError)  # a key params.yaml lacks, a malformed entry


def every_declared_output(
    dvc_file: str | Path = DVC_FILE, params_file: str | Path = DEFAULT_PARAMS_FILE, strict: bool = True
) -> dict[str, list[Path]]:
    """Every stage's declared outputs (:func:`declared_outputs`), by stage. A stage whose outputs do not
    resolve raises ``ValueError`` naming it, or (not ``strict``) is left out."""
    stages, params = _read_pipeline(dvc_file, params_file)
    found = {}
    for name, definition in stages.items():
        try:
            found[name] = _outputs_of(definition, params)
        except _BAD_DEFINITION as error:
            if strict:
                detail = f"{params_file} has no {error}" if isinstance(error, KeyError) else str(error)
                raise ValueError(f"{dvc_file}: the outputs of stage {name} do not resolve: {detail}") from error
    return found


def remove_debris(stage: str | None, outputs: Iterable[Path] | None = None, started: float | None = None) -> list[Path]:
    """Remove what killed runs left near the pipeline's outputs as ``stage`` starts; return what was removed.

    By default every stage's declared outputs are searched: temporaries whose maker (the pid in the name)
    is gone, whichever stage made them, and near ``stage``'s own outputs the pid-less older names too (None:
    no stage starts, pid-named ones only). ``outputs``: only those, as ``stage``'s. Nothing happens outside a
    pipeline checkout (no dvc.yaml) or with files that do not load (the stage reports those); a stage whose
    outputs do not resolve is passed over.
    """
    started = time.time() if started is None else started
    if outputs is not None:
        searched = [(Path(output), stage) for output in outputs]
    else:
        if not Path(DVC_FILE).is_file():
            return []
        try:
            by_stage = every_declared_output(strict=False)
        except (*_BAD_DEFINITION, OSError):  # the stage reports bad files
            return []
        searched = _searched(by_stage, stage)
    return _remove([entry for output, owner in searched for entry in debris_near(output, owner, started)])


def sweep_debris(started: float | None = None) -> list[Path]:
    """``python -m catsdogs.stages --sweep``: remove the temporaries of every stage whose maker is gone,
    without running a stage (for a ``dvc repro`` that restores everything from the run cache or finds it
    unchanged). The pid-less older names stay (no stage starts to own them). ``OSError`` outside a pipeline
    checkout, ``ValueError`` when dvc.yaml or params.yaml does not load or an output does not resolve."""
    if not Path(DVC_FILE).is_file():
        raise FileNotFoundError(f"no {DVC_FILE} in {Path.cwd()}: run it in the pipeline's checkout")
    started = time.time() if started is None else started
    searched = _searched(every_declared_output(strict=True), None)
    return _remove([entry for output, owner in searched for entry in debris_near(output, owner, started)])


def _searched(by_stage: dict[str, list[Path]], stage: str | None) -> list[tuple[Path, str | None]]:
    """(output, the stage whose pid-less names may go near it, or None) for every declared output."""
    own = dict.fromkeys(by_stage.get(stage, []) if stage is not None else [])
    others = dict.fromkeys(output for name, found in by_stage.items() if name != stage for output in found)
    return [(output, stage) for output in own] + [(output, None) for output in others if output not in own]


def _remove(found: list[Path]) -> list[Path]:
    removed = []
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
