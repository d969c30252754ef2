"""A full disk or a read-only place for a stage's outputs: one line naming the output, nothing partial left,

The integration tier's share: the tests that start stages in subprocesses, run dvc or train
for seconds; the fast ones are in tests/unit/test_disk_full.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.unit.test_disk_full import (
    error_line,
    project,  # noqa: F401  (fixtures)
    split,
)


def test_a_read_only_place_fails_in_one_line_and_the_rerun_succeeds(project: Path) -> None:  # noqa: F811
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
