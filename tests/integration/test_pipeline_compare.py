"""End to end: the whole pipeline with `dvc repro`, then comparing runs with DVC's own tools.

A real pipeline in a temporary git + DVC repo on the synthetic source at tiny
sizes (32 px, one epoch, random VGG16 weights, no fine-tuning). The first run is
committed; `dvc exp run -S train_top.epochs=2` makes a second commit with other
params, which `dvc exp show` lists with its metrics; made a branch
(`dvc exp branch`), it is compared with the first: `dvc metrics diff` reports the
changed metrics, `dvc params diff` the param, `dvc plots diff` renders every
declared plot for both revisions. Then a teammate's fresh clone of the pushed
baseline changes one downstream param with the flags DVC documents (`dvc exp run
--pull --allow-missing`): only the stages that read it run, and they pull the photo
folders their manifests stand for, nothing else. Slow: nine stages, each importing TensorFlow.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from tests.conftest import dvc_status, run, stages_ran, update_params

pytestmark = pytest.mark.slow

TINY = {
    "download": {"source": "synthetic", "synthetic": {"count": 16, "size": 32, "test_count": 4}},
    "common": {"image_size": 32, "batch_size": 8},
    "train_scratch": {"strategy": "none"},
    "recipes": {"tutorial": {"epochs": 1, "filters": [8, 8], "dense_units": 8}},
    "vgg16": {"weights": "none"},
    "train_top": {"epochs": 1, "batch_size": 8, "units": [16], "dropouts": [0.2]},
    "finetune": {"epochs": 0},
    "reports": {"worst_images": 4},
}


def commit(repo: Path, message: str) -> None:
    """Commit everything git sees (dvc.lock, params, the uncached reports) in the temporary repo."""
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", message], repo)


def experiment_records(shown: list) -> list[dict]:
    """Every experiment record in `dvc exp show --json` (commits -> experiments -> revs)."""
    records = []
    for commit_record in shown:
        for experiment in commit_record.get("experiments") or []:
            records.extend(experiment.get("revs", []))
    return records


def test_whole_pipeline_then_experiment_then_metrics_and_plots_diff(dvc_repo: Path, tmp_path: Path) -> None:
    repo = dvc_repo
    update_params(repo, TINY)
    first = run(["dvc", "repro"], repo)
    assert stages_ran(first) == {
        "download", "split", "weights", "train_scratch", "extract_features", "train_top", "finetune",
        "evaluate", "reports", "submission",
    }

    # The evaluate, reports and submission stages' outputs.
    validation_count = json.loads((repo / "reports/data/split.json").read_text())["validation"]["total"]
    metrics = json.loads((repo / "reports/evaluate/metrics.json").read_text())
    assert set(metrics) == {"scratch", "top", "finetune", "ensemble"}
    assert all(metrics[name]["n"] == validation_count for name in metrics)
    with open(repo / "reports/evaluate/predictions.csv") as handle:
        assert len(list(csv.DictReader(handle))) == validation_count
    figures = sorted(path.name for path in (repo / "reports/figures").iterdir())
    assert {"scratch_loss.png", "scratch_accuracy.png", "top_loss.png", "top_accuracy.png",
            "confusion_matrices.png", "roc_curves.png", "convolution_walkthrough.png",
            "scratch_first_layer.png", "worst_misclassified.png"} == set(figures)
    for name in figures:
        with Image.open(repo / "reports/figures" / name) as image:
            assert image.format == "PNG"
    summary = (repo / "reports/summary.md").read_text()
    assert "fine-tuning skipped" in summary and "89.4%" in summary and "90.7%" in summary
    submission = (repo / "reports/submission.csv").read_text().splitlines()
    assert submission[0] == "id,label" and [row.split(",")[0] for row in submission[1:]] == ["1", "2", "3", "4"]
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    workspace_metrics = shown[""]["data"]["reports/evaluate/metrics.json"]["data"]
    assert workspace_metrics["top"]["log_loss"] == metrics["top"]["log_loss"]
    assert dvc_status(repo) == {}
    # A change reruns the stages that read the param, and only those: the last three stages' params, and
    # the recipes (the one train_scratch.recipe names; editing another reruns nothing).
    params_text = (repo / "params.yaml").read_text()
    for change, expected in [
        ({"prediction": {"clip": 0.01}}, {"evaluate", "reports", "submission"}),
        ({"prediction": {"threshold": 0.4}}, {"evaluate", "reports"}),
        ({"reports": {"worst_images": 2}}, {"reports"}),
        ({"prediction": {"calibrate": True}}, {"reports", "submission"}),
        ({"images": {"max_pixels": 10_000_000}}, {"split", "reports", "submission"}),
        ({"recipes": {"modern": {"epochs": 3, "filters": [8]}}}, set()),
        ({"recipes": {"tutorial": {"epochs": 2}}}, {"train_scratch", "reports"}),
        ({"train_scratch": {"recipe": "modern"}}, {"train_scratch", "reports"}),
    ]:
        update_params(repo, change)
        assert set(dvc_status(repo)) == expected, change
        (repo / "params.yaml").write_text(params_text)
    assert dvc_status(repo) == {}
    run(["dvc", "remote", "add", "-d", "shared", str(tmp_path / "remote")], repo)
    commit(repo, "tiny run, train_top.epochs 1")
    baseline = run(["git", "rev-parse", "--abbrev-ref", "HEAD"], repo).stdout.strip()
    run(["dvc", "push"], repo)

    # An experiment: only what follows train_top reruns; `dvc exp show` lists it with its metrics.
    experiment = run(["dvc", "exp", "run", "-n", "two-epochs", "-S", "train_top.epochs=2"], repo)
    assert stages_ran(experiment) == {"train_top", "finetune", "evaluate", "reports", "submission"}
    records = experiment_records(json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout))
    record = next(record for record in records if record.get("name") == "two-epochs")
    assert record["data"]["params"]["params.yaml"]["data"]["train_top"]["epochs"] == 2
    recorded = record["data"]["metrics"]
    assert recorded["reports/top/metrics.json"]["data"]["epochs_run"] == 2
    assert set(recorded["reports/evaluate/metrics.json"]["data"]) == {"scratch", "top", "finetune", "ensemble"}

    # The experiment as a branch: a second commit with other params, compared with the first.
    run(["dvc", "exp", "branch", "two-epochs", "two-epochs-branch"], repo)
    diff = json.loads(run(["dvc", "metrics", "diff", baseline, "two-epochs-branch", "--json"], repo).stdout)
    assert diff["reports/top/metrics.json"]["epochs_run"] == {"old": 1, "new": 2, "diff": 1}
    evaluate_diff = diff["reports/evaluate/metrics.json"]
    assert evaluate_diff["top.log_loss"]["old"] != evaluate_diff["top.log_loss"]["new"]
    assert not any(key.startswith("scratch.") for key in evaluate_diff)  # the scratch CNN did not change
    params_diff = json.loads(run(["dvc", "params", "diff", baseline, "two-epochs-branch", "--json"], repo).stdout)
    assert (params_diff["params.yaml"]["train_top.epochs"]["old"], params_diff["params.yaml"]["train_top.epochs"]["new"]) == (1, 2)

    plots_dir = tmp_path / "plots"
    plots = json.loads(
        run(["dvc", "plots", "diff", baseline, "two-epochs-branch", "--json", "-o", str(plots_dir)], repo).stdout
    )["data"]
    for expected in ("confusion", "roc", "top_loss", "scratch_accuracy", "finetune_loss", "finetune_accuracy",
                     "reports/figures/roc_curves.png"):
        assert expected in plots, sorted(plots)
    confusion = plots["confusion"][0]["content"]["data"]["values"]
    assert {row["field"] for row in confusion} == {
        "scratch_predicted", "top_predicted", "finetune_predicted", "ensemble_predicted"}
    assert {row["rev"] for row in confusion} == {baseline, "two-epochs-branch"}
    assert len(confusion) == 2 * 4 * validation_count  # two revisions, four models

    teammate_runs_an_experiment_with_pull(repo, tmp_path / "teammate", validation_count)


def teammate_runs_an_experiment_with_pull(repo: Path, clone: Path, validation_count: int) -> None:
    """A fresh clone of the pushed baseline: `dvc exp run --pull --allow-missing -S prediction.tta=...` runs
    evaluate, reports and submission, which need photo folders that only their manifests stand for in
    dvc.yaml (DVC pulls the manifests): each stage pulls the folder it reads, and nothing else arrives."""
    run(["git", "clone", "-q", str(repo), str(clone)], repo.parent)
    tta = yaml.safe_load((clone / "params.yaml").read_text())["prediction"]["tta"]
    result = run(["dvc", "exp", "run", "--pull", "--allow-missing", "-S", f"prediction.tta={str(not tta).lower()}"],
                 clone)
    assert stages_ran(result) == {"evaluate", "reports", "submission"}
    log = result.stdout + result.stderr
    assert "pulled data/validation from the DVC remote" in log and "pulled data/raw/test from the DVC remote" in log
    metrics = json.loads((clone / "reports/evaluate/metrics.json").read_text())
    assert all(metrics[name]["n"] == validation_count for name in ("scratch", "top", "finetune", "ensemble"))
    assert len((clone / "reports/submission.csv").read_text().splitlines()) == 1 + 4
    assert not (clone / "data/train").exists() and not (clone / "data/raw/train").exists()  # only what ran needed
