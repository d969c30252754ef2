"""A grid of experiments queued with `dvc exp run --queue` and run by two workers (`dvc queue start -j 2`).

The pipeline runs once on tiny generated data and is committed; a 2 x 2 grid over
train_top's params is queued up to train_top (the cheap stage: what a grid search
of the top classifier reruns) and run by two queue workers in parallel; `dvc exp
show --json` then lists the four experiments, each with its params and the
train_top metrics it produced.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import pytest

from tests.conftest import run, update_params
from tests.test_pipeline_compare import TINY, commit, experiment_records

pytestmark = pytest.mark.slow

QUEUE_TIMEOUT_S = 600


def wait_for_queue(repo: Path, expected: int) -> list[dict]:
    """Poll `dvc queue status` until ``expected`` tasks succeeded; fail on a failed task or a timeout."""
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], repo).stdout
        if "Failed" in status:
            logs = run(["dvc", "queue", "logs", status.split()[-4]], repo, check=False)
            pytest.fail(f"a queued experiment failed:\n{status}\n{logs.stdout}\n{logs.stderr}")
        if status.count("Success") >= expected:
            return json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
        time.sleep(5)
    pytest.fail(f"the queue did not finish in {QUEUE_TIMEOUT_S} s:\n{run(['dvc', 'queue', 'status'], repo).stdout}")


def test_a_queued_grid_runs_in_parallel_and_exp_show_lists_each(dvc_repo: Path) -> None:
    repo = dvc_repo
    update_params(repo, TINY)
    run(["dvc", "repro", "train_top"], repo)
    commit(repo, "baseline")

    run(["dvc", "exp", "run", "--queue", "train_top",
         "-S", "train_top.learning_rate=0.001,0.0003", "-S", "train_top.epochs=1,2"], repo)
    queued = run(["dvc", "queue", "status"], repo).stdout
    assert queued.count("Queued") == 4, queued
    run(["dvc", "queue", "start", "-j", "2"], repo)
    try:
        shown = wait_for_queue(repo, 4)
    finally:
        run(["dvc", "queue", "stop", "--kill"], repo, check=False)

    grid = set()
    for record in experiment_records(shown):
        data = record.get("data") or {}
        params = data["params"]["params.yaml"]["data"]["train_top"]
        metrics = data["metrics"]["reports/top/metrics.json"]["data"]
        assert metrics["epochs_run"] == params["epochs"]
        assert 0.0 <= metrics["final_val_accuracy"] <= 1.0
        grid.add((params["learning_rate"], params["epochs"]))
    assert grid == set(itertools.product((0.001, 0.0003), (1, 2)))
    print(run(["dvc", "exp", "show", "--no-pager", "--only-changed", "--sort-by", "final_val_loss"], repo).stdout)
