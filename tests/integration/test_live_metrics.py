"""A training run's progress while it runs: ``dvc exp run`` trains the scratch CNN while this test reads
``reports/scratch/live/metrics.json`` and asks ``dvc metrics show`` and ``dvc exp show`` for it.

A real pipeline in a temporary git + DVC repo: download (synthetic) and split run first and
are committed; then ``dvc exp run train_scratch`` trains for :data:`EPOCHS` epochs (early
stopping too patient to end it sooner), and the step must be seen to move before the stage
ends, in the file and through DVC. Every subprocess runs under a timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, SUBPROCESS_TIMEOUT_S, kill_group, run, update_params

pytestmark = pytest.mark.slow

EPOCHS = 40  # a few tenths of a second each here: long enough to read the file, and DVC, many times
LIVE = "reports/scratch/live/metrics.json"
TINY = {
    "download": {"source": "synthetic", "synthetic": {"count": 40, "size": 32, "test_count": 4}},
    "common": {"image_size": 32, "batch_size": 8},
    "train_scratch": {"strategy": "none"},
    "recipes": {"tutorial": {"epochs": EPOCHS, "patience": EPOCHS, "filters": [8, 8], "dense_units": 8}},
}


def command_env() -> dict:
    """What :func:`tests.conftest.run` gives its commands: this Python first on PATH, this checkout on
    PYTHONPATH."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
            "TF_CPP_MIN_LOG_LEVEL": "2"}


def shown_step(command: list[str], repo: Path) -> int | None:
    """The live metrics' step in the workspace's row of ``dvc metrics show --json`` or ``dvc exp show
    --json`` (None: not there yet)."""
    result = subprocess.run(command, cwd=repo, env=command_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    if command[1] == "metrics":
        files = shown[""]["data"]
    else:
        files = next(record for record in shown if record["rev"] == "workspace")["data"]["metrics"]
    return files.get(LIVE, {}).get("data", {}).get("step")


def test_the_step_moves_in_live_metrics_and_in_dvc_while_dvc_exp_run_trains(dvc_repo: Path) -> None:
    repo = dvc_repo
    update_params(repo, TINY)
    run(["dvc", "repro", "split"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "the split"], repo)

    process = subprocess.Popen(
        ["dvc", "exp", "run", "train_scratch"], cwd=repo, env=command_env(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    read, metrics_show, exp_show = [], [], []  # steps seen while the run was still going
    deadline = time.monotonic() + SUBPROCESS_TIMEOUT_S
    try:
        while process.poll() is None:
            assert time.monotonic() < deadline, f"dvc exp run ran past {SUBPROCESS_TIMEOUT_S} s"
            if (repo / LIVE).is_file():
                step = json.loads((repo / LIVE).read_text()).get("step")  # always whole: written atomically
                if process.poll() is None and step is not None:
                    read.append(step)
                if len(set(metrics_show)) < 2:
                    step = shown_step(["dvc", "metrics", "show", "--json"], repo)
                    if process.poll() is None and step is not None:
                        metrics_show.append(step)
                elif not exp_show:
                    step = shown_step(["dvc", "exp", "show", "--json"], repo)
                    if process.poll() is None and step is not None:
                        exp_show.append(step)
            time.sleep(0.05)
        output = process.stdout.read()
    finally:
        if process.poll() is None:
            kill_group(process)
        process.communicate()
    assert process.returncode == 0, output
    print(f"steps read: {sorted(set(read))}; dvc metrics show: {metrics_show}; dvc exp show: {exp_show}")

    final = json.loads((repo / LIVE).read_text())
    assert final["step"] == EPOCHS - 1 and final["epoch"] == EPOCHS
    assert set(final["train"]) == set(final["eval"]) == {"loss", "accuracy"}
    # Before the stage ended: the step moved, in the file and in what DVC shows of the workspace.
    during = sorted(set(step for step in read if step < EPOCHS - 1))
    assert len(during) >= 2, read
    assert read == sorted(read)  # never back
    assert len(set(step for step in metrics_show if step < EPOCHS - 1)) >= 2, metrics_show
    assert exp_show and exp_show[0] < EPOCHS - 1, exp_show
    # After it: dvc lists the live metrics with the stage's others.
    assert shown_step(["dvc", "metrics", "show", "--json"], repo) == EPOCHS - 1
