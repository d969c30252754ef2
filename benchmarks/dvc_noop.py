"""The cost of asking DVC whether anything changed: our pipeline against DVC's own floor.

A workspace of generated images (the whole pipeline run once, tiny images, one
epoch each) is asked ``dvc status`` and a no-op ``dvc repro`` several times; the
floor is a bare ``dvc status`` of a one-stage pipeline that depends on the same
files; a second floor is one stage that outputs them (DVC then checks them in its
cache, as it must the pipeline's outputs). All run one after the other, each repeated.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import yaml

from benchmarks.common import ROOT, copy_pipeline

# Every folder and file the pipeline tracks that the floor should walk, each once: the photo folders
# and the manifests that stand for them in the pipeline's deps (catsdogs/core/manifest.py).
FLOOR_DEPS = (
    "data/raw", "data/raw.manifest.json", "data/train", "data/validation", "data/split.manifest.json",
    "features", "models",
)


def _run(command: list[str], cwd: Path, timeout_s: float) -> float:
    """Run a command (the venv first on PATH); its wall time in seconds; RuntimeError with its output on failure."""
    env = {**os.environ, "PATH": f"{Path(os.sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return time.perf_counter() - started


def _init_repo(folder: Path, timeout_s: float) -> None:
    """A git + DVC repository with the project's DVC config (cache links included)."""
    folder.mkdir(parents=True)
    for command in (["git", "init", "-q"], ["git", "config", "user.email", "bench@example.com"],
                    ["git", "config", "user.name", "bench"], ["dvc", "init", "-q"]):
        _run(command, folder, timeout_s)
    shutil.copy(ROOT / ".dvc" / "config", folder / ".dvc" / "config")


def pipeline_workspace(folder: Path, images: int, timeout_s: float) -> Path:
    """The whole pipeline, run once on ``images`` generated photos (32x32, one epoch per training stage)."""
    _init_repo(folder, timeout_s)
    copy_pipeline(folder)
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params["common"].update(image_size=32, batch_size=64)
    params["download"].update(source="synthetic", synthetic={"count": images // 2, "size": 32, "test_count": 100})
    params["recipes"][params["train_scratch"]["recipe"]]["epochs"] = 1
    params["vgg16"]["weights"] = "none"
    params["train_top"]["epochs"] = 1
    params["finetune"]["epochs"] = 0
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["dvc", "repro", "-q"], folder, timeout_s)
    _run(["git", "add", "-A"], folder, timeout_s)
    _run(["git", "commit", "-qm", "pipeline"], folder, timeout_s)
    return folder


def floor_workspace(folder: Path, pipeline: Path, timeout_s: float, as_outputs: bool = False) -> Path:
    """A one-stage pipeline depending on the same files (hard-linked copies), its lock recorded.

    ``as_outputs``: the stage outputs them instead (kept, not rerun: ``persist``), so
    DVC stores them in its cache and checks them there as it does the pipeline's.
    """
    _init_repo(folder, timeout_s)
    for dep in FLOOR_DEPS:
        if (pipeline / dep).is_dir():
            shutil.copytree(pipeline / dep, folder / dep, copy_function=os.link)
        else:
            (folder / dep).parent.mkdir(parents=True, exist_ok=True)
            os.link(pipeline / dep, folder / dep)
    files = {"outs": [{dep: {"persist": True}} for dep in FLOOR_DEPS]} if as_outputs else {"deps": list(FLOOR_DEPS)}
    stage = {"stages": {"all": {"cmd": "true", **files}}}
    (folder / "dvc.yaml").write_text(yaml.safe_dump(stage))
    (folder / ".gitignore").write_text("".join(f"/{dep}\n" for dep in FLOOR_DEPS))
    _run(["dvc", "repro", "-q"], folder, timeout_s)
    return folder


def timings(command: list[str], cwd: Path, repeats: int, timeout_s: float) -> dict:
    """Median and all wall times of ``repeats`` runs (after one warm-up run)."""
    _run(command, cwd, timeout_s)
    seconds = [_run(command, cwd, timeout_s) for _ in range(repeats)]
    return {"median_seconds": round(statistics.median(seconds), 2), "seconds": [round(s, 2) for s in seconds]}


def measure(scratch: Path, images: int, repeats: int, timeout_s: float) -> dict:
    """No-op ``dvc status`` and ``dvc repro`` on the pipeline workspace, and the floor's ``dvc status``."""
    started = time.perf_counter()
    pipeline = pipeline_workspace(scratch / "pipeline", images, timeout_s)
    build_seconds = time.perf_counter() - started
    floor = floor_workspace(scratch / "floor", pipeline, timeout_s)
    files = sum(1 for dep in FLOOR_DEPS for path in [pipeline / dep, *(pipeline / dep).rglob("*")] if path.is_file())
    status = timings(["dvc", "status", "-q"], pipeline, repeats, timeout_s)
    repro = timings(["dvc", "repro", "-q"], pipeline, repeats, timeout_s)
    floor_status = timings(["dvc", "status", "-q"], floor, repeats, timeout_s)
    outputs_floor = floor_workspace(scratch / "floor-outputs", pipeline, timeout_s, as_outputs=True)
    outputs_floor_status = timings(["dvc", "status", "-q"], outputs_floor, repeats, timeout_s)
    return {
        "images": images,
        "tracked_files": files,
        "pipeline_build_seconds": round(build_seconds, 1),
        "dvc_status": status,
        "dvc_repro_noop": repro,
        "floor_dvc_status": floor_status,
        "status_vs_floor": round(status["median_seconds"] / floor_status["median_seconds"], 2),
        "repro_vs_floor": round(repro["median_seconds"] / floor_status["median_seconds"], 2),
        # The same files as the outputs of one stage: DVC then also checks them in its cache, as in the pipeline.
        "outputs_floor_dvc_status": outputs_floor_status,
        "status_vs_outputs_floor": round(status["median_seconds"] / outputs_floor_status["median_seconds"], 2),
        "repro_vs_outputs_floor": round(repro["median_seconds"] / outputs_floor_status["median_seconds"], 2),
    }
