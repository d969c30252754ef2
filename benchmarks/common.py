"""What every benchmark shares: the machine's description, data sets, child processes with their peak memory."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = ROOT.parent / "shared" / "data" / "kaggle-sample"
INTERESTING_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")


def copy_pipeline(folder: Path) -> None:
    """This project's pipeline into ``folder``: dvc.yaml, params.yaml, .gitignore, the stages' code and the
    local-weights folder the weights stage depends on (no caches, no local weights files)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", "params.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, folder / name)
    for code in ("catsdogs", "weights"):
        shutil.copytree(ROOT / code, folder / code, ignore=shutil.ignore_patterns("__pycache__", "*.h5"))


def machine() -> dict:
    """CPU model, core count, the instruction-set flags that decide TensorFlow's speed, memory, versions."""
    from catsdogs.models.precision import cpu_flags

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    flags = cpu_flags()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    versions = {}
    for package in ("tensorflow", "keras", "dvc", "numpy"):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:  # noqa: BLE001 - a missing package is reported as such
            versions[package] = "not installed"
    return {
        "cpu": model or platform.processor(),
        "cpus": os.cpu_count(),
        "cpu_flags": [flag for flag in INTERESTING_FLAGS if flag in flags],
        "memory_gib": round(memory / 1024**3, 1),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
        "python": platform.python_version(),
        "versions": versions,
    }


def run_child(task: str, settings: dict, timeout_s: float) -> dict:
    """Run one measurement in a fresh Python process; its JSON result plus its own peak RSS (MiB).

    A fresh process per measurement gives each a clean Keras dtype policy and its
    own peak memory (the worker reports its ``ru_maxrss`` when it is done).
    """
    command = [sys.executable, "-m", "benchmarks.worker", task, json.dumps(settings)]
    started = time.perf_counter()
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        try:
            stdout, stderr = child.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            raise RuntimeError(f"benchmark {task} ran past {timeout_s:.0f} s") from None
    if child.returncode:
        raise RuntimeError(f"benchmark {task} failed ({child.returncode}):\n{stderr[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    return result


def split_layout(root: Path, train_per_class: int, validation_per_class: int, size: int, seed: int) -> Path:
    """``root/{train,validation}/{cats,dogs}`` of generated images (``size`` pixels), made once per settings."""
    from catsdogs.sources.synthetic import write_split_layout

    folder = root / f"synthetic-{train_per_class}-{validation_per_class}-{size}-{seed}"
    if not (folder / ".complete").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        write_split_layout(folder / "train", train_per_class, size, seed)
        write_split_layout(folder / "validation", validation_per_class, size, seed + 1)
        (folder / ".complete").write_text("")
    return folder


def sample_layout(root: Path, seed: int, name: str = "kaggle-sample") -> Path | None:
    """A shared photo set (``kaggle-sample`` by default, or ``kaggle-medium``) split 80/20 by the pipeline's own
    split code, or None where it is absent."""
    source = SHARED_SAMPLE.parent / name / "train"
    if not source.is_dir():
        return None
    from catsdogs.core.params import validate_params
    from catsdogs.data.split import split_dataset

    folder = root / f"{name}-{seed}"
    if not (folder / ".complete").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        params = validate_params({})  # params.yaml's defaults: the split section and the image size limit
        split_dataset(source, folder / "train", folder / "validation", **params.split.model_dump(),
                      max_pixels=params.images.max_pixels, seed=seed)
        (folder / ".complete").write_text("")
    return folder
