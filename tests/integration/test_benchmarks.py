"""The benchmark scripts run once on tiny inputs, so they cannot rot unnoticed (figures are not checked:
timings on a test machine mean nothing)."""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import ROOT, run

pytestmark = pytest.mark.slow


def test_every_benchmark_runs_quick_and_writes_its_report(tmp_path):
    output = tmp_path / "benchmarks.json"
    # About 3.5 min on a busy 2-core machine: every alternative runs in a fresh process.
    result = run([sys.executable, "-m", "benchmarks", "--quick", "--output", str(output)], ROOT, timeout=840)
    report = json.loads(output.read_text())
    assert {"training", "extraction", "precision", "memory", "dvc"} <= set(report)
    for name in ("tutorial", "ours", "bound", "large", "large_bound"):
        assert report["training"]["runs"][name]["images_per_second"] > 0
    assert report["training"]["large_vs_large_bound"] > 0
    if report["precision"]["auto_picks_here"] != "float32":  # a CPU with bfloat16 instructions
        auto = report["training"]["runs"]["ours_auto"]
        assert auto["dtype_policy"] == report["precision"]["auto_picks_here"]
        assert report["training"]["ours_auto_vs_tutorial"] > 0
        assert report["precision"]["bfloat16"]["training"] == auto  # measured once, reported in both sections
    cost = report["training"]["augmentation_cost"]
    assert set(cost["ms_per_batch_one_thread"]) == {
        "tutorial_ours", "tutorial_one_warp_tensorflow_kernel", "tutorial_layers_in_turn", "modern_ours",
        "modern_layers_in_turn", "train_step"}
    assert 0 < cost["augmentation_vs_step"] and report["training"]["by_median_epoch"]["ours_vs_bound"] > 0
    for measured in report["training"]["runs"].values():
        assert measured["best_images_per_second"] >= measured["images_per_second"] > 0
    assert report["extraction"]["ours_vs_bound"] > 0
    assert set(report["memory"]) == {"40", "80"}
    assert report["dvc"]["images"] == 200 and report["dvc"]["dvc_status"]["median_seconds"] > 0
    assert report["dvc"]["outputs_floor_dvc_status"]["median_seconds"] > 0
    table = output.with_suffix(".md").read_text()
    assert table.startswith("| benchmark |") and "no-op `dvc status`" in table and "augmentation CPU" in table
    assert "compute bound, large recipe (32 px" in table and "large training: bfloat16 vs float32" in table
    assert report["precision"]["float32"]["large_training"]["dtype_policy"] == "float32"
    assert f"wrote {output}" in result.stdout


def test_the_recipes_benchmark_parses_its_arguments():
    # Its runs need kaggle-medium (4,000 photos); parsing and imports are what can rot without it.
    result = run([sys.executable, "-m", "benchmarks.recipes", "--help"], ROOT, timeout=120)
    assert "--recipes" in result.stdout and "--seeds" in result.stdout
    assert "large" in result.stdout and "full" in result.stdout  # every recipe; the 17,998-photo training set


def test_the_networks_benchmark_times_each_network_in_its_own_process():
    result = run([sys.executable, "-m", "benchmarks.networks", "--quick", "--networks", "large", "keras_io_x0.35"],
                 ROOT, timeout=300)
    header, *rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert "cpu_flags" in header["machine"] and header["precision"] == "auto"
    assert [row["network"] for row in rows] == ["large", "keras_io_x0.35"]
    assert rows[0]["parameters"] == 2_707_169 and rows[1]["parameters"] < 400_000  # the x0.35 widths
    assert all(row["images"] == 8 and row["images_per_second"] > 0 for row in rows)
