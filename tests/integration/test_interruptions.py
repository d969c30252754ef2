"""Interrupted stages: debris is cleaned up on the next start, and a killed `dvc repro` reruns to the
same outputs as an uninterrupted one.

The integration tier's share (stages in subprocesses, dvc, training for seconds); the fast
tests, and what the module covers, are in tests/unit/test_interruptions.py.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from catsdogs.core.debris import remove_debris
from tests.conftest import ROOT, copy_pipeline, run, update_params

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}

# Makes a temporary for the output argv[1] with the project's atomic writer, then dies (argv[2] == "kill")
# or waits to be killed (a stage still running).
MAKE_TEMPORARY = """
import os, signal, sys, time
from catsdogs.core.io import atomic_path
with atomic_path(sys.argv[1]) as temporary:
    temporary.mkdir()
    (temporary / "half-written").write_text("x")
    print(temporary, flush=True)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(120)
"""

SYNTHETIC = {"source": "synthetic", "synthetic": {"count": 4, "size": 32, "test_count": 1}}

# Installed in every stage process of a test (sitecustomize on PYTHONPATH; the stage code knows nothing of
# it): counts the stage's writes (a file opened for writing, a rename/replace, a link, a copy) through
# Python's audit hooks and, at write KILL_AT_WRITE (or at the first write to a path containing KILL_AT_PATH),
# sends KILL_SIGNAL to the whole `dvc repro` session (dvc included, as when a machine goes away) before the
# write happens. COUNT_WRITES_TO: a file that gets "<stage> <writes>" at exit instead.
HOOK = r'''
import atexit, os, signal, sys

def _stage():
    argv = getattr(sys, "orig_argv", sys.argv)
    for index in range(len(argv) - 2):  # python -m catsdogs.stages <stage>
        if argv[index] == "-m" and argv[index + 1] == "catsdogs.stages":
            return argv[index + 2]
    return None

_STAGE = _stage()
if _STAGE and _STAGE == os.environ.get("HOOK_STAGE"):
    _writes = [0]
    _kill_at = int(os.environ.get("KILL_AT_WRITE", "0"))
    _kill_at_path = os.environ.get("KILL_AT_PATH")
    _signal = getattr(signal, os.environ.get("KILL_SIGNAL", "SIGKILL"))
    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT
    if _signal == signal.SIGINT and signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # A stage started with SIGINT ignored (inherited: a test process that runs dvc in process, a
        # background job) installs no Ctrl-C handler; restore the one a terminal's Ctrl-C meets.
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def _hook(event, args):
        if event == "open":
            mode, flags = args[1], args[2]
            if isinstance(mode, str) and not set(mode) & set("wxa+"):
                return
            if mode is None and not flags & _WRITE_FLAGS:
                return
        elif event not in ("os.rename", "os.link", "shutil.copyfile", "os.symlink"):
            return
        _writes[0] += 1
        path = args[0] if args and isinstance(args[0], (str, bytes, os.PathLike)) else ""
        if _writes[0] == _kill_at or (_kill_at_path and _kill_at_path in os.fsdecode(path)):
            for group in dict.fromkeys((os.getsid(0), os.getpgid(0))):
                os.killpg(group, _signal)

    sys.addaudithook(_hook)
    if os.environ.get("COUNT_WRITES_TO"):
        def _report():
            line = f"{_STAGE} {_writes[0]}\n"  # before the open below counts as a write
            with open(os.environ["COUNT_WRITES_TO"], "a") as file:
                file.write(line)
        atexit.register(_report)
'''

STAGE_OUTPUTS = {  # the manifests too: absent or whole after a kill, never describing a tree that is not there
    "download": ["data/raw", "data/raw.manifest.json"],
    "split": ["data/train", "data/validation", "data/split.manifest.json", "reports/data/split.json",
              "reports/data/split_files.json"],
    "weights": ["models/vgg16_notop.weights.h5"],
    "extract_features": ["features"],
}

HARNESS_PARAMS = {
    "download": {"source": "synthetic", "synthetic": {"count": 12, "size": 32, "test_count": 2}},
    "common": {"image_size": 32, "batch_size": 8},
    "vgg16": {"weights": "none"},
}

DEBRIS = re.compile(r"^\..+\.\d+\.[a-z0-9_]{8}\.tmp|^\.download-|^\.split-normalized-")

TIMEOUT_S = 600

SCENARIOS = [
    (stage, point, signal_name)
    for stage in STAGE_OUTPUTS
    for point, signal_name in (("early", "SIGKILL"), ("mid", "SIGKILL"), ("late", "SIGKILL"), ("mid", "SIGINT"))
]



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


def test_a_stage_removes_what_killed_runs_left_and_nothing_else(tmp_path: Path, monkeypatch) -> None:
    repo = pipeline_checkout(tmp_path, {"download": SYNTHETIC})
    dead = killed_temporary(repo, "data/raw")  # download's own output: removed
    (repo / "data/raw").mkdir()  # a previous tree, with a killed run's file inside it
    inside = killed_temporary(repo, "data/raw/train")
    legacy = repo / "data/.download-abc123"  # the name before pids were in it
    legacy.mkdir()
    # split's, its maker gone: removed too (DVC may restore split from its run cache and never start it)
    others = killed_temporary(repo, "data/train")
    # split's staging folder, made at the root when data/ did not exist yet: removed too
    staging = repo / f".train.{dead.name.split('.')[2]}.abcd1234.tmp-normalized"
    staging.mkdir()
    # split's pid-less older names: age-based, so they could be a running split's: split's alone to remove
    others_legacy = [repo / "data/.split-normalized-abc123", repo / "data/.train.abcd1234.tmp"]
    for path in [legacy, *others_legacy]:
        path.mkdir(exist_ok=True)
        os.utime(path, (time.time() - 60, time.time() - 60))
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
            [sys.executable, "-m", "catsdogs.stages", "download"], cwd=repo, env=ENV, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr
        assert "left by an interrupted run" in result.stderr
        assert not dead.exists() and not legacy.exists() and not others.exists() and not staging.exists()
        assert not (repo / "data/raw" / inside.name).exists()
        assert running.is_dir() and unrelated.read_text() == "mine"
        assert all(path.is_dir() for path in others_legacy)
        assert sorted(p.suffix for p in (repo / "data/raw/train").iterdir()) == [".jpg"] * 8
    finally:
        live.kill()
        live.wait(timeout=60)
    leftovers = [str(path.relative_to(repo)) for path in (dead, legacy, others, running, staging, *others_legacy)]
    monkeypatch.chdir(repo)
    # split removes its own older names, and download's temporary now that its maker is gone
    assert set(remove_debris("split")) == {path.relative_to(repo) for path in (*others_legacy, running)}
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True, timeout=60)
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    ignored = subprocess.run(
        ["git", "check-ignore", *leftovers], cwd=repo, capture_output=True, text=True, timeout=60
    ).stdout.split()
    assert ignored == leftovers  # git status never lists a temporary


def tree_hash(path: Path) -> str | None:
    """A hash of a file, or of a folder's every file (names and bytes, hidden ones included); None if absent."""
    if not path.exists():
        return None
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(str(file.relative_to(path)).encode() + b"\0" + hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def debris_in(repo: Path) -> list[str]:
    """Temporaries anywhere in the checkout (git's and DVC's own folders aside)."""
    return sorted(
        str(path.relative_to(repo)) for path in repo.rglob(".*")
        if DEBRIS.match(path.name) and not {".git", ".dvc"} & set(path.relative_to(repo).parts)
    )


def hooked_env(hook_dir: Path, stage: str, **extra: str) -> dict:
    """The environment `dvc` runs in: the test's Python first on PATH, the hook on PYTHONPATH."""
    env = dict(os.environ, HOOK_STAGE=stage, **extra)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hook_dir), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def dvc(repo: Path, args: list[str], env: dict) -> subprocess.CompletedProcess:
    """`dvc <args>` in its own session (the hook kills that session), with a timeout."""
    process = subprocess.Popen(
        ["dvc", *args], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, output)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """An uninterrupted `dvc repro extract_features` on generated data: the repo, each stage's output
    hashes and how many writes each stage makes."""
    base = tmp_path_factory.mktemp("harness")
    hook_dir = base / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(HOOK)
    repo = base / "reference"
    copy_pipeline(repo)
    update_params(repo, HARNESS_PARAMS)
    for command in (["git", "init", "-q"], ["git", "config", "user.email", "t@example.com"],
                    ["git", "config", "user.name", "t"], ["dvc", "init", "-q"],
                    ["dvc", "config", "core.analytics", "false"], ["git", "add", "-A"], ["git", "commit", "-qm", "i"]):
        run(command, repo)
    counts = base / "writes.txt"
    writes = {}
    for stage in STAGE_OUTPUTS:
        result = dvc(repo, ["repro", "-s", stage], hooked_env(hook_dir, stage, COUNT_WRITES_TO=str(counts)))
        assert result.returncode == 0, result.stdout
        writes[stage] = int(counts.read_text().split()[-1])
    print(f"writes per stage (kill points: first, middle, last): {writes}")
    hashes = {stage: {out: tree_hash(repo / out) for out in outs} for stage, outs in STAGE_OUTPUTS.items()}
    assert all(value is not None for outs in hashes.values() for value in outs.values())
    return {"repo": repo, "hook": hook_dir, "writes": writes, "hashes": hashes}


def kill_points(writes: int) -> dict[str, int]:
    """Where to kill: the first write, the middle one, the last one (just before the stage would finish)."""
    return {"early": 1, "mid": max(1, writes // 2), "late": writes}


@pytest.mark.slow
@pytest.mark.parametrize(("stage", "point", "signal_name"), SCENARIOS)
def test_a_killed_stage_reruns_to_the_uninterrupted_outputs(
    reference: dict, tmp_path: Path, stage: str, point: str, signal_name: str
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(reference["repo"], repo, symlinks=True)
    # The stage has not run here yet (dvc.lock forgets it and what follows), as on a first run.
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    following = list(STAGE_OUTPUTS)[list(STAGE_OUTPUTS).index(stage):]
    lock["stages"] = {name: entry for name, entry in lock["stages"].items() if name not in following}
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    at = kill_points(reference["writes"][stage])[point]
    killed = dvc(repo, ["repro", "--no-run-cache", stage],
                 hooked_env(reference["hook"], stage, KILL_AT_WRITE=str(at), KILL_SIGNAL=signal_name))
    assert killed.returncode != 0, killed.stdout
    expected = reference["hashes"][stage]
    for output, digest in expected.items():  # what a kill leaves is absent or whole, never partial
        assert tree_hash(repo / output) in (None, digest), f"{output} is partial after a kill at write {at}"

    rerun = dvc(repo, ["repro", "--no-run-cache", stage], hooked_env(reference["hook"], "none"))
    assert rerun.returncode == 0, rerun.stdout
    assert f"Running stage '{stage}'" in rerun.stdout
    assert {output: tree_hash(repo / output) for output in expected} == expected
    assert debris_in(repo) == []
    assert "up to date" in run(["dvc", "status", stage], repo).stdout


@pytest.mark.slow
def test_what_a_killed_run_left_goes_when_dvc_restores_from_the_run_cache(reference: dict, tmp_path: Path) -> None:
    """The issue's path, run cache on as users have it: `dvc repro -f split` killed while download writes its
    temporaries, then `dvc repro split`: DVC restores download from its run cache and finds split unchanged,
    so no stage starts and the debris stays; `python -m catsdogs.stages --sweep` (make pipeline runs it
    before `dvc repro`) removes every dead temporary and leaves the outputs as they were."""
    repo = tmp_path / "repo"
    shutil.copytree(reference["repo"], repo, symlinks=True)
    # -f forces split's upstream too; the kill lands at download's first write into its tree's temporary
    # folder, when that folder and the scratch folder both exist
    killed = dvc(repo, ["repro", "-f", "split"], hooked_env(reference["hook"], "download", KILL_AT_PATH=".tmp/"))
    assert killed.returncode != 0, killed.stdout
    assert "Running stage 'download'" in killed.stdout and "Running stage 'split'" not in killed.stdout
    left = debris_in(repo)
    assert any(name.startswith("data/.raw.") and name.endswith(".tmp") for name in left), left
    assert any(name.endswith(".tmp-download") for name in left), left

    rerun = dvc(repo, ["repro", "split"], hooked_env(reference["hook"], "none"))
    assert rerun.returncode == 0, rerun.stdout
    assert "Stage 'download' is cached - skipping run, checking out outputs" in rerun.stdout, rerun.stdout
    assert "Stage 'split' didn't change, skipping" in rerun.stdout, rerun.stdout
    assert "Running stage" not in rerun.stdout, rerun.stdout
    assert debris_in(repo) == left  # no stage started: nothing swept

    sweep = subprocess.run([sys.executable, "-m", "catsdogs.stages", "--sweep"], cwd=repo, env=ENV,
                           capture_output=True, text=True, timeout=120)
    assert sweep.returncode == 0, sweep.stderr
    assert f"removed {len(left)} temporary file(s) left by an interrupted run" in sweep.stderr, sweep.stderr
    assert debris_in(repo) == []
    for stage in ("download", "split"):
        assert {out: tree_hash(repo / out) for out in STAGE_OUTPUTS[stage]} == reference["hashes"][stage]
    assert "up to date" in run(["dvc", "status", "split"], repo).stdout
