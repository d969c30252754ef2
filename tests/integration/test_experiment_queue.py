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
from tests.integration.test_pipeline_compare import TINY, commit, experiment_records

pytestmark = pytest.mark.slow

QUEUE_TIMEOUT_S = 600


def experiment_states(shown: list) -> list[tuple[str, str | None]]:
    """(name, executor state: queued, running, success, failed or None) of every experiment in
    `dvc exp show --json`."""
    states = []
    for commit_record in shown:
        for experiment in commit_record.get("experiments") or []:
            revs = experiment.get("revs") or [{}]
            states.append((revs[0].get("name") or revs[0].get("rev", "?"), (experiment.get("executor") or {}).get("state")))
    return states


def wait_for_queue(repo: Path, expected: int) -> list[dict]:
    """Poll `dvc exp show --json` until ``expected`` experiments finished and none is queued or running;
    fail on a failed one (with its log) or a timeout."""
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    while time.monotonic() < deadline:
        shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
        states = experiment_states(shown)
        failed = [name for name, state in states if state == "failed"]
        if failed:
            logs = run(["dvc", "queue", "logs", failed[0]], repo, check=False)
            pytest.fail(f"a queued experiment failed: {states}\n{logs.stdout}\n{logs.stderr}")
        pending = [name for name, state in states if state in ("queued", "running")]
        if not pending and len(experiment_records(shown)) >= expected:
            return shown
        time.sleep(5)
    pytest.fail(f"the queue did not finish in {QUEUE_TIMEOUT_S} s: {experiment_states(json.loads(run(['dvc', 'exp', 'show', '--json'], repo).stdout))}")


def test_a_queued_grid_runs_in_parallel_and_exp_show_lists_each(dvc_repo: Path) -> None:
    repo = dvc_repo
    update_params(repo, TINY)
    run(["dvc", "repro", "train_top"], repo)
    commit(repo, "baseline")

    run(["dvc", "exp", "run", "--queue", "train_top",
         "-S", "train_top.learning_rate=0.001,0.0003", "-S", "train_top.epochs=1,2"], repo)
    queued = experiment_states(json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout))
    assert [state for _, state in queued] == ["queued"] * 4, queued
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
