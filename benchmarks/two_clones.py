"""Two clean clones, the same params: do their dvc.lock files pin the same outputs?

    python -m benchmarks.two_clones --source ../shared/data/kaggle-sample --output two-clones.json

A git repository holding this project's pipeline (source ``dir`` pointing at the
photos, random VGG16 weights since ImageNet's cannot be downloaded everywhere, short
training with ``runtime.deterministic: true``) is cloned twice; each clone runs
``dvc repro`` in its own process tree with its own PYTHONHASHSEED, and the script
compares every output hash dvc.lock records, stage by stage, and the training
metrics. It prints and writes which outputs agree and which do not.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.common import ROOT, copy_pipeline, machine

# Short training (the point is identity, not accuracy); everything else is params.yaml's.
PARAMS = {
    "runtime": {"deterministic": True},
    "vgg16": {"weights": "none"},
    "recipes": {"tutorial": {"epochs": 2, "start_from_epoch": 0}},  # train_scratch.recipe's default
    "train_top": {"epochs": 2},
    "finetune": {"epochs": 0},
}


def merge(params: dict, changes: dict) -> None:
    """Set every key of ``changes`` in ``params``, nested mappings key by key (the rest of a section stays)."""
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(params.get(key), dict):
            merge(params[key], value)
        else:
            params[key] = value


def run(command: list[str], cwd: Path, env: dict | None = None, timeout_s: float = 3600) -> str:
    """Run a command with this checkout's venv first on PATH; RuntimeError with its output on failure."""
    env = {**os.environ, **(env or {})}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed in {cwd}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def origin_repo(folder: Path, source: Path) -> Path:
    """A git repository with the pipeline, its code and the params above."""
    copy_pipeline(folder)
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params["download"].update(source="dir", dir=str(source.resolve()))
    merge(params, PARAMS)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for command in (["git", "init", "-q"], ["git", "config", "user.email", "b@example.com"],
                    ["git", "config", "user.name", "b"], ["dvc", "init", "-q"], ["git", "add", "-A"],
                    ["git", "commit", "-qm", "pipeline"]):
        run(command, folder)
    (folder / ".dvc" / "config").write_bytes((ROOT / ".dvc" / "config").read_bytes())
    run(["git", "commit", "-qam", "dvc config"], folder)
    return folder


def locked_outputs(clone: Path) -> dict[str, dict[str, str]]:
    """Every output's hash in dvc.lock, by stage and path."""
    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    return {stage: {out["path"]: out.get("md5", "") for out in entry.get("outs", [])}
            for stage, entry in lock["stages"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="a folder laid out like Kaggle's (train/, test/)")
    parser.add_argument("--scratch", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=None)
    arguments = parser.parse_args()
    scratch = arguments.scratch or Path(tempfile.mkdtemp(prefix="catsdogs-two-clones-"))
    origin = origin_repo(scratch / "origin", arguments.source)
    clones, seconds = [], []
    for index, hash_seed in enumerate(("1", "2")):
        clone = scratch / f"clone-{index + 1}"
        run(["git", "clone", "-q", str(origin), str(clone)], scratch)
        started = time.perf_counter()
        run(["dvc", "repro", "-q"], clone, env={"PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(clone)})
        seconds.append(round(time.perf_counter() - started, 1))
        clones.append(clone)
    first, second = (locked_outputs(clone) for clone in clones)
    outputs = {f"{stage}: {path}": {"same": digest == second[stage][path], "md5": digest}
               for stage, paths in first.items() for path, digest in paths.items()}
    metrics = {}
    for name in ("scratch", "top", "finetune", "evaluate"):
        pair = [json.loads((clone / "reports" / name / "metrics.json").read_text()) for clone in clones]
        timings = ("seconds", "per_second", "minutes")
        comparable = [{key: value for key, value in metric.items() if not any(t in key for t in timings)}
                      for metric in pair]
        metrics[name] = {"same": comparable[0] == comparable[1],
                         "differing": sorted(k for k in comparable[0] if comparable[0].get(k) != comparable[1].get(k))}
    report = {"machine": machine(), "source": str(arguments.source), "params": PARAMS, "repro_seconds": seconds,
              "outputs": outputs, "metrics_without_timings": metrics}
    for name, entry in outputs.items():
        print(f"{'same     ' if entry['same'] else 'DIFFERENT'} {name}")
    for name, entry in metrics.items():
        print(f"{'same     ' if entry['same'] else 'DIFFERENT'} metrics {name} {entry['differing'] or ''}")
    if arguments.output:
        arguments.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
