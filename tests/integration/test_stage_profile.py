"""benchmarks/stages.py, the per-stage profile of a pipeline run, on tiny generated photos: every figure it reports
is checked against what the stages wrote, /proc, the log and ``du`` (timings themselves mean nothing here)."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.stages import disk_usage, estimates, stage_order
from catsdogs.core.progress import WorkEstimate
from catsdogs.core.runner import STAGE_FORMAT
from tests.conftest import ROOT, run
from tests.integration.test_pipeline_compare import TINY

COUNT = 128  # photos per class: enough for split's estimate (after 200 photos) and 26 training batches of 8 an epoch
STAGES = ["download", "split", "train_scratch", "weights", "extract_features"]


def flattened(params: dict, prefix: str = "") -> list[str]:
    """``{"a": {"b": 1}}`` -> ``["-S", "a.b=1"]`` (JSON is YAML)."""
    arguments = []
    for key, value in params.items():
        if isinstance(value, dict):
            arguments += flattened(value, f"{prefix}{key}.")
        else:
            arguments += ["-S", f"{prefix}{key}={json.dumps(value)}"]
    return arguments


def du(repo: Path, option: str) -> int:
    """``du -s`` of the workspace's output folders and the cache in one call (hardlinks counted once), in bytes."""
    folders = [name for name in ("data", "features", "models", "reports", ".dvc/cache") if (repo / name).exists()]
    output = subprocess.run(["du", "-s", option, *folders], cwd=repo, capture_output=True, text=True, check=True,
                            timeout=60).stdout
    return sum(int(line.split()[0]) for line in output.splitlines())


@pytest.mark.slow
def test_profile_of_five_stages_matches_what_they_wrote(tmp_path: Path) -> None:
    work, output = tmp_path / "work", tmp_path / "profile.json"
    overrides = flattened(TINY) + ["-S", f"download.synthetic.count={COUNT}", "-S", "recipes.tutorial.epochs=2"]
    # --stages in the wrong order on purpose: the script runs them in the graph's.
    result = run([sys.executable, "-m", "benchmarks.stages", "--synthetic", str(COUNT), *overrides,
                  "--stages", *reversed(STAGES), "--cache-type", "hardlink", "--work", str(work), "--keep",
                  "--output", str(output), "--timeout-s", "300"], ROOT, timeout=420)
    report = json.loads(output.read_text())
    repo, logs = work / "repo", work / "logs"
    records = {record["stage"]: record for record in report["stages"]}
    assert [record["stage"] for record in report["stages"]] == STAGES
    assert report["cache_type"] == "hardlink" and report["params"]["common"]["image_size"] == 32
    assert isinstance(report["machine"]["cpu_flags"], list) and report["machine"]["cpus"] > 0
    assert "error" not in report

    for record in report["stages"]:
        assert record["returncode"] == 0 and record["ran"]
        # Sampled every 0.2 s: download's python may live for one sample only (0 s).
        assert 0 <= record["stage_process_seconds"] <= record["wall_seconds"] + 2 * record["sample_interval_s"]
        assert record["stage_process_seconds"] > 0 or record["stage"] == "download"
        assert record["peak_rss_mib"] > 0
        # ru_maxrss of the children is the largest process of the tree: never below what /proc saw of any of them.
        assert all(peak <= record["peak_rss_mib"] + 1 for peak in record["sampled_peak_rss_mib"].values()), (
            record["stage"], record["peak_rss_mib"], record["sampled_peak_rss_mib"])
        if record["stage"] == "weights":  # reads no photos
            assert record["images"] is None and record["images_per_second"] is None
        else:
            assert record["images_per_second"] == pytest.approx(record["images"] / record["wall_seconds"], abs=0.01)
        for estimate in record["estimates"]:
            assert 0 < estimate["logged_at_s"] < record["wall_seconds"]
            assert estimate["actual_remaining_s"] > 0 and estimate["estimated_remaining_s"] >= 0
            assert estimate["actual_remaining_with_dvc_s"] >= estimate["actual_remaining_s"]
            assert estimate["message"] in (logs / f"{record['stage']}.log").read_text()

    # Peak RSS is the stage's python, which imports TensorFlow (hundreds of MiB): not the wrapper's own, not dvc's.
    scratch = records["train_scratch"]
    for record in (scratch, records["extract_features"]):
        assert record["peak_rss_mib"] > 250 and record["sampled_peak_rss_mib"]["stage"] > 250
        assert record["wrapper_own_rss_mib"] < 100 and record["sampled_peak_rss_mib"]["dvc"] < 250

    # Images: what each stage's outputs say.
    raw = json.loads((repo / "data/raw.manifest.json").read_text())["trees"]["data/raw"]
    assert records["download"]["images"] == len(raw) == 2 * COUNT + TINY["download"]["synthetic"]["test_count"]
    split = json.loads((repo / "reports/data/split.json").read_text())
    assert records["split"]["images"] == split["files"]["checked"] == 2 * COUNT
    metrics = json.loads((repo / "reports/scratch/metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and metrics["train_count"] == split["train"]["total"]
    assert scratch["images"] == metrics["train_count"] * metrics["epochs_run"]
    assert scratch["stage_images_per_second"] == metrics["images_per_second"]
    counts = json.loads((repo / "features/meta.json").read_text())["counts"]
    assert records["extract_features"]["images"] == counts["train"]["total"] + counts["validation"]["total"] == 2 * COUNT

    # The estimates progress.py logs: split's after 200 photos; training's after 10 batches and after epoch 1.
    assert [(e["what"], e["done"], e["total"]) for e in records["split"]["estimates"]] == [("decode-check", 200, 256)]
    assert [(e["what"], e["total"]) for e in records["extract_features"]["estimates"]] == [("features", 2 * COUNT)]
    kinds = [estimate["kind"] for estimate in scratch["estimates"]]
    assert kinds[0] == "work" and kinds[1].startswith("after first epoch") and len(kinds) == 2
    assert scratch["estimates"][0]["total"] == 2 * -(-metrics["train_count"] // 8)

    # Disk: the photos are hardlinked into the cache (cache.type hardlink), so all of it counted once is less than
    # the workspace plus the cache, by the linked files (VGG16's weights among them, once the weights stage has
    # run); the totals are du's of all the folders in one call.
    for record in report["stages"]:
        disk = record["disk_after"]
        assert disk["folders"]["data"]["allocated_bytes"] > 0 and disk["cache"]["allocated_bytes"] > 0
        assert disk["workspace_inodes_in_cache"]["entries"] >= 2 * COUNT
        total = disk["total_counting_links_once"]
        for size in ("apparent_bytes", "allocated_bytes"):
            assert total[size] == disk["workspace"][size] + disk["cache"][size] - disk["workspace_inodes_in_cache"][size]
            assert total[size] < disk["workspace"][size] + disk["cache"][size]
    weights = records["weights"]["disk_after"]
    assert weights["workspace_inodes_in_cache"]["apparent_bytes"] > records["train_scratch"]["disk_after"][
        "workspace_inodes_in_cache"]["apparent_bytes"] + (repo / "models/vgg16_notop.weights.h5").stat().st_size - 1
    final = report["totals"]["disk_after"]["total_counting_links_once"]
    assert final["allocated_bytes"] == du(repo, "-B1") and final["apparent_bytes"] == du(repo, "-b")

    table = result.stdout
    assert "| stage | wall s" in table and "cache.type hardlink" in table and " CPUs (" in table
    for stage in STAGES:
        assert f"\n| {stage} | " in table
    assert "\n| **total** |" in table and "decode-check at" in table

    # A subset that lacks an upstream stage is refused before anything runs.
    with pytest.raises(ValueError, match="needs the outputs of download"):
        stage_order(repo, ["split"])


def test_disk_usage_counts_a_file_linked_into_the_cache_once(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / ".dvc/cache").mkdir(parents=True)
    (tmp_path / "data/linked.bin").write_bytes(b"x" * 100_000)
    (tmp_path / ".dvc/cache/linked").hardlink_to(tmp_path / "data/linked.bin")
    (tmp_path / "data/copied.bin").write_bytes(b"y" * 50_000)
    (tmp_path / ".dvc/cache/copied").write_bytes(b"y" * 50_000)
    disk = disk_usage(tmp_path)
    assert disk["workspace_inodes_in_cache"]["entries"] == 1
    assert disk["workspace_inodes_in_cache"]["apparent_bytes"] == 100_000
    total = disk["total_counting_links_once"]
    assert total["apparent_bytes"] == disk["workspace"]["apparent_bytes"] + disk["cache"]["apparent_bytes"] - 100_000
    assert total["allocated_bytes"] == du(tmp_path, "-B1") and total["apparent_bytes"] == du(tmp_path, "-b")


def test_the_estimates_progress_logs_are_parsed() -> None:
    # The line WorkEstimate really writes, in the stages' log format.
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(STAGE_FORMAT, datefmt="%H:%M:%S"))
    logger = logging.getLogger("split")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        work = WorkEstimate(logger, "decode-check", 1000, "images", estimate_after=200)
        for _ in range(1000):
            work.update(1)
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue().strip()
    epoch = line[:14] + "train_scratch: training: first epoch (validation included) took 2 min: at most about " \
        "1.5 h for the other 45 (early stopping may end sooner)"
    found = estimates([[10.0, line], [70.0, epoch], [80.0, line[:14] + "split: unrelated"]], 100.0, 105.0)
    assert [entry["kind"] for entry in found] == ["work", "after first epoch (an upper bound: early stopping)"]
    assert found[0]["what"] == "decode-check" and found[0]["done"] == 200 and found[0]["total"] == 1000
    assert found[0]["actual_remaining_s"] == 90.0 and found[0]["actual_remaining_with_dvc_s"] == 95.0
    assert found[0]["estimated_remaining_s"] >= 0
    assert found[1]["estimated_remaining_s"] == 5400.0 and found[1]["actual_remaining_s"] == 30.0
    assert found[1]["estimated_over_actual"] == 180.0
