"""A full disk or a read-only place for a stage's outputs: one line naming the output, nothing partial left,
and the rerun succeeds once there is room (a small tmpfs mounted where the test may; skipped elsewhere)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from catsdogs.sources.synthetic import write_kaggle_train
from tests.conftest import ROOT

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
ROOM = 48 * 1024  # bytes left free on the small file system: far less than the split writes


def mount(path: Path, *options: str) -> None:
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(path)],
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")


@pytest.fixture
def project(tmp_path: Path):
    """A project whose split outputs (data/) lie on their own 2 MiB tmpfs; the raw images elsewhere."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["paths"].update(raw="input/raw", raw_train="input/raw/train", raw_test="input/raw/test")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    write_kaggle_train(tmp_path / "input/raw/train", count=20, size=96, seed=0)
    (tmp_path / "data").mkdir()
    mount(tmp_path / "data", "size=2m")
    try:
        yield tmp_path
    finally:
        subprocess.run(["umount", "-l", str(tmp_path / "data")], capture_output=True, timeout=60)


def split(project: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "catsdogs.stages", "split"], cwd=project, env=ENV, capture_output=True,
                          text=True, timeout=300)


def error_line(result: subprocess.CompletedProcess) -> str:
    """The stage's one error line (and no traceback)."""
    lines = [line for line in result.stderr.splitlines() if " ERROR split" in line or "Traceback" in line]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_full_disk_fails_in_one_line_leaves_nothing_and_the_rerun_succeeds(project: Path) -> None:
    stats = os.statvfs(project / "data")
    filler = project / "data/filler"
    filler.write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - ROOM))
    result = split(project)
    assert result.returncode == 1
    line = error_line(result)
    assert line.endswith("split failed: [Errno 28] no space left on the device holding data/train")
    assert sorted(p.name for p in (project / "data").iterdir()) == ["filler"]  # no partial output, no temporary
    assert not (project / "reports").exists()

    filler.unlink()
    rerun = split(project)
    assert rerun.returncode == 0, rerun.stderr
    assert len(list((project / "data/train/cats").iterdir())) == 16
    assert sorted(p.name for p in (project / "data").iterdir()) == ["split.manifest.json", "train", "validation"]


def test_a_read_only_place_fails_in_one_line_and_the_rerun_succeeds(project: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(project / "data")], check=True, timeout=60)
    result = split(project)
    assert result.returncode == 1
    line = error_line(result)
    assert line.endswith("split failed: [Errno 30] cannot write data/train: its file system is read-only")
    assert list((project / "data").iterdir()) == []

    subprocess.run(["mount", "-o", "remount,rw", str(project / "data")], check=True, timeout=60)
    rerun = split(project)
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(p.name for p in (project / "data").iterdir()) == ["split.manifest.json", "train", "validation"]
