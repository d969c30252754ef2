"""Shared fixtures: generated images, a temporary git + DVC copy of the project."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = ROOT.parent / "shared" / "data" / "kaggle-sample"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


SUBPROCESS_TIMEOUT_S = 600  # a hung dvc, git or stage fails its test with its output, not CI's limit


def run(
    command: list[str], cwd: Path, check: bool = True, timeout: float = SUBPROCESS_TIMEOUT_S,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    """Run a command with the test's Python first on PATH and this checkout first on PYTHONPATH
    (so ``python -m catsdogs.stages X`` and dvc's stage commands import the code under test); fail with
    its output when it exits non-zero (``check``) or runs past ``timeout`` seconds (its whole
    process group is killed)."""
    env = dict(os.environ if env is None else env)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group: a timeout kills dvc's children too
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        stdout, stderr = process.communicate()
        pytest.fail(
            f"{' '.join(command)} ran past {timeout} s and was killed\nstdout:\n{stdout}\nstderr:\n{stderr}",
            pytrace=False,
        )
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL a process started with ``start_new_session=True`` and everything in its group."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


STAGE_NAMES = frozenset(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
# The project's own log line (catsdogs/core/runner.py STAGE_FORMAT): "12:34:56 INFO split: ...".
STAGE_LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (?:DEBUG|INFO|WARNING|ERROR|CRITICAL) (\w+): ", re.MULTILINE)


def stages_ran(result: subprocess.CompletedProcess) -> set[str]:
    """The pipeline stages that ran in a ``dvc repro`` / ``dvc exp run``: those whose own log lines
    appear in its output (each stage logs under its name). Not DVC's human-readable text, which
    a DVC release may reword."""
    found = set(STAGE_LOG_LINE.findall(result.stdout or "")) | set(STAGE_LOG_LINE.findall(result.stderr or ""))
    return found & STAGE_NAMES


def dvc_status(repo: Path, *targets: str, with_deps: bool = False) -> dict:
    """``dvc status --json`` (only the stages that changed, with what changed)."""
    command = ["dvc", "status", "--json", *(["--with-deps"] if with_deps else []), *targets]
    output = run(command, repo).stdout.strip()
    return json.loads(output) if output else {}


def default_params() -> dict:
    """The shipped params.yaml as a plain mapping (recipes included: the schema alone has none)."""
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def merged(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` deep-merged into it (a new mapping)."""
    result = dict(base)
    for key, value in changes.items():
        result[key] = merged(result[key], value) if isinstance(value, dict) and isinstance(result.get(key), dict) else value
    return result


def scratch_arguments(root: Path, changes: dict | None = None) -> tuple:
    """train_scratch's arguments as its main() builds them from the shipped params with ``changes``
    deep-merged in, every path under ``root``: (files, common, runtime, scratch, recipe)."""
    from catsdogs.core.params import validate_params
    from catsdogs.models.recipes import load_recipe
    from catsdogs.train.training import TrainingFiles

    params = validate_params(merged(default_params(), changes or {}))
    paths = params.paths
    files = TrainingFiles(root / paths.train, root / paths.validation, root / paths.scratch_model,
                          root / paths.scratch_reports)
    recipe = load_recipe(params.train_scratch.recipe, params.recipes)
    return files, params.common, params.runtime, params.train_scratch, recipe


def update_params(repo: Path, changes: dict) -> None:
    """Deep-merge ``changes`` into repo/params.yaml."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())

    def merge(target: dict, update: dict) -> None:
        for key, value in update.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                merge(target[key], value)
            else:
                target[key] = value

    merge(params, changes)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def copy_pipeline(repo: Path) -> None:
    """The project's pipeline into ``repo``: dvc.yaml, params, the stages' code, the local-weights folder."""
    repo.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", "params.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    for folder in ("catsdogs", "weights"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__", "*.h5"))


@pytest.fixture
def dvc_repo(tmp_path: Path) -> Path:
    """A fresh git + DVC repository holding a copy of the project's pipeline and code."""
    repo = tmp_path / "repo"
    copy_pipeline(repo)
    run(["git", "init", "-q"], repo)
    run(["git", "config", "user.email", "tests@example.com"], repo)
    run(["git", "config", "user.name", "tests"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["dvc", "config", "core.analytics", "false"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "init"], repo)
    return repo


@pytest.fixture
def shared_sample() -> Path:
    """The real Kaggle sample beside the checkout; skipped where it is absent (fresh clones, CI)."""
    if not (SHARED_SAMPLE / "train").is_dir():
        pytest.skip(f"{SHARED_SAMPLE} not present")
    return SHARED_SAMPLE
