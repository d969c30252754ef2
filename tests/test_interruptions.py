"""Interrupted stages: debris is cleaned up on the next start, and a killed `dvc repro` reruns to
the same outputs as an uninterrupted one."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from stages.lib.debris import remove_debris
from tests.conftest import ROOT

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
# Makes a temporary for the output argv[1] with the project's atomic writer, then dies (argv[2] == "kill")
# or waits to be killed (a stage still running).
MAKE_TEMPORARY = """
import os, signal, sys, time
from stages.lib.io import atomic_path
with atomic_path(sys.argv[1]) as temporary:
    temporary.mkdir()
    (temporary / "half-written").write_text("x")
    print(temporary, flush=True)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(120)
"""


def killed_temporary(repo: Path, output: str) -> Path:
    """The temporary a process SIGKILLed inside atomic_path(output) leaves (the process is reaped)."""
    result = subprocess.run(
        [sys.executable, "-c", MAKE_TEMPORARY, output, "kill"], cwd=repo, env=ENV, capture_output=True,
        text=True, timeout=120,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    left = repo / result.stdout.strip()
    assert left.is_dir()
    return left


def pipeline_checkout(tmp_path: Path, params: dict) -> Path:
    """dvc.yaml and params.yaml (updated with ``params``) in a fresh folder: enough to run a stage."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "dvc.yaml", repo / "dvc.yaml")
    shipped = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in params.items():
        shipped[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(shipped))
    return repo


SYNTHETIC = {"source": "synthetic", "synthetic": {"count": 4, "size": 32, "test_count": 1}}


def test_a_stage_removes_what_its_killed_run_left_and_nothing_else(tmp_path: Path, monkeypatch) -> None:
    repo = pipeline_checkout(tmp_path, {"download": SYNTHETIC})
    dead = killed_temporary(repo, "data/raw")  # download's own output: removed
    (repo / "data/raw").mkdir()  # a previous tree, with a killed run's file inside it
    inside = killed_temporary(repo, "data/raw/train")
    legacy = repo / "data/.download-abc123"  # the name before pids were in it
    legacy.mkdir()
    os.utime(legacy, (time.time() - 60, time.time() - 60))
    others = killed_temporary(repo, "data/train")  # split's: not download's to remove
    # split's staging folder, made at the root when data/ did not exist yet: split's, not download's
    staging = repo / f".train.{dead.name.split('.')[2]}.abcd1234.tmp-normalized"
    staging.mkdir()
    unrelated = repo / "data/.raw.notes"
    unrelated.write_text("mine")
    live = subprocess.Popen(
        [sys.executable, "-c", MAKE_TEMPORARY, "data/raw", "wait"], cwd=repo, env=ENV, stdout=subprocess.PIPE,
        text=True,
    )
    try:
        running = repo / live.stdout.readline().strip()  # a download still running elsewhere: kept
        assert running.is_dir()
        result = subprocess.run(
            [sys.executable, "-m", "stages.download"], cwd=repo, env=ENV, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr
        assert "left by an interrupted run" in result.stderr
        assert not dead.exists() and not legacy.exists()
        assert not (repo / "data/raw" / inside.name).exists()
        assert running.is_dir() and others.is_dir() and staging.is_dir() and unrelated.read_text() == "mine"
        assert sorted(p.suffix for p in (repo / "data/raw/train").iterdir()) == [".jpg"] * 8
    finally:
        live.kill()
        live.wait(timeout=60)
    leftovers = [str(path.relative_to(repo)) for path in (dead, legacy, others, running, staging)]
    monkeypatch.chdir(repo)
    assert set(remove_debris("split")) == {Path(others.relative_to(repo)), Path(staging.name)}
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True, timeout=60)
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    ignored = subprocess.run(
        ["git", "check-ignore", *leftovers], cwd=repo, capture_output=True, text=True, timeout=60
    ).stdout.split()
    assert ignored == leftovers  # git status never lists a temporary
