"""Benchmark VGG16 feature extraction in float32 and mixed precision on the same images.

Each precision runs in its own child process (a clean global dtype policy and its
own peak memory), through the stage's own code (stages.extract_features), and
writes its features to a temporary folder. The parent then compares them:
images/second (extraction only, model building excluded), peak resident memory
of each child (``resource.getrusage(RUSAGE_SELF).ru_maxrss``: the whole process,
TensorFlow included), the feature difference (max abs, mean abs, relative L2)
and the downstream effect: train_top on each feature set, same seed and params.

    python -m benchmarks.bench_extract_features --data /tmp/split   # data/train, data/validation inside
    python benchmarks/bench_extract_features.py --data DIR --image-size 150 --weights none

``--data`` holds ``train/`` and ``validation/`` (class folders cats/ and dogs/).
On a shared CPU timings are noisy: run twice and compare.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def worker(args: argparse.Namespace) -> None:
    """Child: extract both splits with one precision, print a JSON line of timings and peak memory."""
    from stages.extract_features import extract_features
    from stages.lib.seeding import seed_everything

    seed_everything(args.seed, deterministic=False)
    started = time.perf_counter()
    meta = extract_features(
        {split: Path(args.data) / split for split in ("train", "validation")},
        args.output,
        image_size=args.image_size,
        batch_size=args.batch_size,
        weights=args.weights,
        preprocessing=args.preprocessing,
        mixed_precision=args.mixed_precision,
        seed=args.seed,
    )
    total = time.perf_counter() - started
    print(json.dumps({
        "policy": meta["dtype_policy"],
        "images": sum(count["total"] for count in meta["counts"].values()),
        "extract_seconds": meta["extract_seconds"],
        "total_seconds": total,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
    }))


def run_child(args: argparse.Namespace, mixed_precision: bool, output: Path) -> dict:
    """Run one precision in a child process; its JSON report."""
    command = [
        sys.executable, str(Path(__file__).resolve()), "--worker", "--data", str(args.data),
        "--output", str(output), "--image-size", str(args.image_size), "--batch-size", str(args.batch_size),
        "--weights", args.weights, "--preprocessing", args.preprocessing, "--seed", str(args.seed),
    ] + (["--mixed-precision"] if mixed_precision else [])
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        raise SystemExit(f"worker failed ({'mixed' if mixed_precision else 'float32'})")
    return json.loads(result.stdout.strip().splitlines()[-1])


def compare(first: Path, second: Path) -> dict:
    """Feature differences between two feature folders (second relative to first), both splits."""
    import numpy as np

    report = {}
    for split in ("train", "validation"):
        reference = np.load(first / f"{split}_features.npy")
        other = np.load(second / f"{split}_features.npy")
        difference = np.abs(other - reference)
        report[split] = {
            "max_abs_diff": float(difference.max()),
            "mean_abs_diff": float(difference.mean()),
            "max_abs_value": float(np.abs(reference).max()),
            "relative_l2_error": float(np.linalg.norm(other - reference) / np.linalg.norm(reference)),
        }
    return report


def downstream(features_dir: Path, epochs: int, seed: int) -> dict:
    """Train the top classifier (train_top defaults, ``epochs``) on one feature folder; its final figures."""
    from stages.lib.params import TrainTopParams
    from stages.train_top import load_features, train_top_classifier

    loaded, _ = load_features(features_dir)
    with contextlib.redirect_stdout(sys.stderr):  # Keras's epoch lines: stdout stays the JSON report
        _, history = train_top_classifier(loaded, TrainTopParams(epochs=epochs), seed)
    return {"final_val_accuracy": history["val_accuracy"][-1], "final_val_loss": history["val_loss"][-1]}


def main() -> None:
    """Parse arguments; run float32 then mixed precision; print the comparison as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with train/ and validation/")
    parser.add_argument("--image-size", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--weights", default="none", help="imagenet | none | path to a weights file")
    parser.add_argument("--preprocessing", default="vgg16", choices=("vgg16", "rescale"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--top-epochs", type=int, default=15, help="train_top epochs per feature set (0: skip)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mixed-precision", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    with tempfile.TemporaryDirectory(prefix="bench_features_") as scratch:
        folders = {"float32": Path(scratch) / "float32", "mixed": Path(scratch) / "mixed"}
        runs = {name: run_child(args, name == "mixed", folder) for name, folder in folders.items()}
        for result in runs.values():
            result["images_per_second"] = result["images"] / sum(result["extract_seconds"].values())
        report = {
            "settings": {k: str(v) for k, v in vars(args).items() if k not in ("worker", "mixed_precision", "output")},
            "cpu_count": os.cpu_count(),
            "runs": runs,
            "speedup": runs["mixed"]["images_per_second"] / runs["float32"]["images_per_second"],
            "feature_difference": compare(folders["float32"], folders["mixed"]),
            "peak_rss_note": "ru_maxrss of each child process (whole process: TensorFlow, model, data pipeline)",
        }
        if args.top_epochs:
            report["downstream_train_top"] = {
                name: downstream(folder, args.top_epochs, args.seed) for name, folder in folders.items()
            }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
