"""Train the scratch CNN's recipes on real photos and score them on photos they never saw.

    python -m benchmarks.recipes --train sample --recipes tutorial modern --seeds 42 1
    python -m benchmarks.recipes --train medium --recipes tutorial --seeds 42 1 7
    python -m benchmarks.recipes --train sample --recipes modern --seeds 42 -S recipes.modern.epochs=30
    python -m benchmarks.recipes --train full --recipes large --seeds 42 -S common.image_size=160

Each run is the pipeline's own stages in a scratch workspace: download (source
``dir``), split (seeded by the run's seed, like ``common.seed``), train_scratch with
the recipe (``train_scratch.recipe``; its section ``recipes.<name>`` at its defaults but
for the ``-S`` overrides, full params.yaml keys as ``dvc exp run -S`` takes them); then
``catsdogs predict`` on every photo of the other set (a model
trained on the 1,000-photo sample is scored on kaggle-medium's 4,000 photos, one
trained on kaggle-medium, or on kaggle-medium and kaggle-large together (``full``), on the
sample's 1,000 full-size photos: other Kaggle ids, never seen), scored by
accuracy and log loss (P(dog) clipped as the CLI clips it). Results are appended to
``--output`` (JSON lines) and printed as a table row each.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from benchmarks.common import ROOT
from catsdogs.core.params import parse_params
from catsdogs.models.recipes import default_configs, recipe_names

SHARED = ROOT.parent / "shared" / "data"
# The folders each training set is downloaded from (download.dir: one folder or several).
TRAIN_SETS = {
    "sample": [SHARED / "kaggle-sample"],
    "medium": [SHARED / "kaggle-medium"],
    "full": [SHARED / "kaggle-medium", SHARED / "kaggle-large"],  # 17,998 photos at 200x200
}
# Scored on photos of another set: different Kaggle ids, never trained or validated on (the full set's are
# the sample's 1,000 full-size photos: nothing tunes on them).
UNSEEN = {
    "sample": SHARED / "kaggle-medium" / "train",
    "medium": SHARED / "kaggle-sample" / "train",
    "full": SHARED / "kaggle-sample" / "train",
}


def run_module(module: str, args: list[str], cwd: Path, timeout_s: float) -> subprocess.CompletedProcess:
    """``python -m module args`` in ``cwd`` with this repository's code; RuntimeError with its log on failure."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout_s)
    if result.returncode not in (0, 2):  # catsdogs predict exits 2 when some file failed
        raise RuntimeError(f"{module} failed in {cwd}:\n{result.stderr[-4000:]}")
    return result


def set_key(params: dict, dotted: str, value) -> None:
    """Set ``a.b.c`` in a nested mapping."""
    *parents, leaf = dotted.split(".")
    for key in parents:
        params = params.setdefault(key, {})
    params[leaf] = value


def override_value(key: str, text: str):
    """An ``-S`` value read as DVC reads params.yaml (YAML 1.2). Read as the value of a one-key mapping:
    ``parse_params`` reads whole files and gives ``{}`` for a falsy document (``0``, ``false``, ``null``)."""
    return parse_params(f"value: {text}", f"-S {key}")["value"]


def prepared_split(scratch: Path, train_set: str, seed: int, timeout_s: float) -> Path:
    """A workspace holding data/ split from ``train_set`` with ``seed`` (made once)."""
    workspace = scratch / f"{train_set}-{seed}"
    if (workspace / "data" / "validation").is_dir():
        return workspace
    workspace.mkdir(parents=True, exist_ok=True)
    folders = [str(folder) for folder in TRAIN_SETS[train_set]]
    params = {"common": {"seed": seed}, "download": {"source": "dir", "dir": folders if len(folders) > 1 else folders[0]}}
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("download", "split"):
        run_module("catsdogs.stages", [stage], workspace, timeout_s)
    return workspace


def score_unseen(workspace: Path, params_file: Path, model: Path, unseen: Path, timeout_s: float, tta: bool) -> dict:
    """Accuracy and log loss of ``catsdogs predict`` (with ``--tta`` or ``--no-tta``) on every photo of ``unseen``."""
    flag = "--tta" if tta else "--no-tta"
    result = run_module("catsdogs.cli", ["predict", str(unseen), "--model", str(model), "--params", str(params_file),
                                       "--format", "csv", flag], workspace, timeout_s)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    correct, loss = 0, 0.0
    for row in rows:
        actual = 1 if Path(row["file"]).name.startswith("dog.") else 0
        probability = float(row["p_dog"])
        correct += int((probability >= 0.5) == bool(actual))
        loss -= math.log(probability if actual else 1 - probability)
    suffix = "_tta" if tta else ""
    return {"unseen_images": len(rows), f"unseen_accuracy{suffix}": round(correct / len(rows), 4),
            f"unseen_log_loss{suffix}": round(loss / len(rows), 4)}


def run_one(scratch: Path, train_set: str, recipe: str, seed: int, overrides: list[str], timeout_s: float) -> dict:
    """Train one recipe on one split; its figures."""
    workspace = prepared_split(scratch, train_set, seed, timeout_s)
    name = f"{recipe}-{seed}-{hashlib.sha256(' '.join(overrides).encode()).hexdigest()[:6]}"
    params = {"common": {"seed": seed}, "train_scratch": {"recipe": recipe},
              # every recipe's section as params.yaml ships it (train_scratch reads the chosen one)
              "recipes": {each: config.model_dump() for each, config in default_configs().items()},
              "paths": {"scratch_model": f"runs/{name}/scratch.keras", "scratch_reports": f"runs/{name}/reports"}}
    for override in overrides:
        key, _, value = override.partition("=")
        set_key(params, key, override_value(key, value))  # as `dvc exp run -S` reads it
    params_file = workspace / f"params-{name}.yaml"
    params_file.write_text(yaml.safe_dump(params))
    (workspace / "params.yaml").write_text(params_file.read_text())
    started = time.perf_counter()
    run_module("catsdogs.stages", ["train_scratch"], workspace, timeout_s)
    wall = time.perf_counter() - started
    metrics = json.loads((workspace / "runs" / name / "reports" / "metrics.json").read_text())
    result = {
        "train_set": train_set, "recipe": recipe, "seed": seed, "overrides": overrides,
        "train_images": metrics["train_count"], "validation_images": metrics["validation_count"],
        "best_val_accuracy": metrics["best_val_accuracy"], "best_val_loss": metrics["best_val_loss"],
        "epochs_run": metrics["epochs_run"], "best_epoch": metrics["best_epoch"],
        "training_minutes": round(metrics["training_seconds"] / 60, 1), "stage_minutes": round(wall / 60, 1),
        "images_per_second": metrics["images_per_second"], "at_chance": metrics.get("at_chance"),
    }
    for tta in (False, True):
        result |= score_unseen(workspace, params_file, workspace / "runs" / name / "scratch.keras",
                               UNSEEN[train_set], timeout_s, tta)
    return result


def main() -> None:
    """Parse the arguments, run every (recipe, seed), append each result to --output and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", choices=sorted(TRAIN_SETS), required=True)
    parser.add_argument("--recipes", nargs="+", choices=recipe_names(), required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 1])
    parser.add_argument("-S", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a params.yaml key for every run, as `dvc exp run -S` takes it, "
                        "e.g. -S recipes.modern.epochs=30 or -S recipes.tutorial.patience=8")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/catsdogs-recipes"))
    parser.add_argument("--output", type=Path, default=ROOT / "reports" / "recipes.jsonl")
    parser.add_argument("--timeout", type=float, default=4 * 3600)
    args = parser.parse_args()
    for folder in [*TRAIN_SETS[args.train], UNSEEN[args.train]]:
        if not folder.is_dir():
            raise SystemExit(f"{folder} not found: this benchmark needs the shared photos")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for recipe in args.recipes:
        for seed in args.seeds:
            result = run_one(args.scratch, args.train, recipe, seed, args.overrides, args.timeout)
            with args.output.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(result) + "\n")
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
