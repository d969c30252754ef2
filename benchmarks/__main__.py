"""Run every benchmark side by side and write reports/benchmarks.json and reports/benchmarks.md.

    python -m benchmarks                 # the README's figures (about an hour on 2 cores)
    python -m benchmarks --quick         # tiny sizes: checks that every benchmark still runs
    python -m benchmarks --only training extraction

Sections (each alternative runs in its own fresh process, one after the other):

- training: train_scratch's pipeline against the tutorial's ImageDataGenerator
  feeding the same CNN, and against the compute bound (the same training steps on
  images already in memory); the same against the bound for the large recipe's network
  at its image size; images/s over whole epochs, validation included;
  and what the augmentation costs beside a training step (one thread each);
- extraction: extract_features against VGG16's forward pass on in-memory images;
- precision: float32 against bfloat16 for both and the large recipe's network, and what ``runtime.mixed_precision: auto`` picks here;
- memory: peak RSS of the train_scratch and extract_features stages at two sizes;
- dvc: a no-op ``dvc status`` / ``dvc repro`` on a 25,000-image workspace against DVC's floor.

Timings on a shared machine are noisy: compare figures of one run with each other,
and read them beside the CPU flags and load average the report records.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks import dvc_noop
from benchmarks.common import ROOT, machine, run_child, sample_layout, split_layout
from catsdogs.models.precision import choose_policy, cpu_flags

SECTIONS = ("training", "extraction", "precision", "memory", "dvc")


def settings_for(args: argparse.Namespace, data: Path, **changes) -> dict:
    """The settings every worker reads."""
    return {"data": str(data), "image_size": args.image_size, "batch_size": args.batch_size, "seed": args.seed,
            "epochs": args.epochs, "mixed_precision": False, "cache": "memory", **changes}


def training(args, data: Path, results: dict) -> dict:
    """Ours vs the tutorial's pipeline vs the compute bound."""
    runs = {name: run_child(f"train_{name}", settings_for(args, data), args.timeout)
            for name in ("tutorial", "ours", "bound")}
    # What a user gets with `runtime.mixed_precision: auto` where it picks a lower precision (bfloat16 on a CPU with
    # AVX512-BF16 or AMX) against the tutorial's float32 pipeline, in the same run.
    if choose_policy("auto", False, cpu_flags()) != "float32":
        runs["ours_auto"] = run_child("train_ours", settings_for(args, data, mixed_precision="auto"), args.timeout)
    # The large recipe's network, as a user runs it (its image size, `mixed_precision: auto`), against its own
    # compute bound: the pipeline must keep a network that costs several times the tutorial's fed as well.
    large = settings_for(args, data, recipe="large", image_size=args.large_image_size, mixed_precision="auto")
    runs["large"] = run_child("train_ours", large, args.timeout)
    runs["large_bound"] = run_child("train_bound", large, args.timeout)
    cost = run_child("augmentation_cost", settings_for(args, data, repeats=10 * args.repeats), args.timeout)
    pairs = [("ours", "tutorial"), ("ours", "bound"), ("large", "large_bound")]
    pairs += [("ours_auto", "tutorial")] * ("ours_auto" in runs)
    report = {"runs": runs, "by_median_epoch": {},
              "goals": {"ours_vs_tutorial": ">= 2.0", "ours_vs_bound": ">= 0.9", "large_vs_large_bound": ">= 0.9"},
              "augmentation_cost": cost}
    for name, baseline in pairs:  # by fastest epoch (speed) and by median epoch
        report[f"{name}_vs_{baseline}"] = round(speed(runs[name]) / speed(runs[baseline]), 2)
        report["by_median_epoch"][f"{name}_vs_{baseline}"] = round(
            runs[name]["images_per_second"] / runs[baseline]["images_per_second"], 2)
    return report


def extraction(args, data: Path, results: dict) -> dict:
    """extract_features vs VGG16's forward pass on in-memory images."""
    runs = {name: run_child(f"extract_{name}", settings_for(args, data), args.timeout) for name in ("ours", "bound")}
    ratio = runs["ours"]["images_per_second"] / runs["bound"]["images_per_second"]
    return {"runs": runs, "ours_vs_bound": round(ratio, 2), "goals": {"ours_vs_bound": ">= 0.9"}}


def speed(run: dict) -> float:
    """A run's images/s as the comparisons use it: a training run's fastest epoch, an extraction's whole pass."""
    return run.get("best_images_per_second", run["images_per_second"])


def precision(args, data: Path, results: dict) -> dict:
    """bfloat16 against float32 (reusing the runs of the sections above when they ran)."""
    float32 = {
        "training": results.get("training", {}).get("runs", {}).get("ours")
        or run_child("train_ours", settings_for(args, data), args.timeout),
        "extraction": results.get("extraction", {}).get("runs", {}).get("ours")
        or run_child("extract_ours", settings_for(args, data), args.timeout),
    }
    auto = results.get("training", {}).get("runs", {}).get("ours_auto")
    bfloat16 = {
        "training": auto if auto and auto["dtype_policy"] == "mixed_bfloat16"
        else run_child("train_ours", settings_for(args, data, mixed_precision=True), args.timeout),
        "extraction": run_child("extract_ours", settings_for(args, data, mixed_precision=True), args.timeout),
    }
    # The large recipe's network at its image size: what float32 costs it (its bfloat16 run is the training
    # section's, when that ran on a CPU where `auto` picks bfloat16).
    large = settings_for(args, data, recipe="large", image_size=args.large_image_size)
    float32["large_training"] = run_child("train_ours", large, args.timeout)
    large_auto = results.get("training", {}).get("runs", {}).get("large")
    bfloat16["large_training"] = (large_auto if large_auto and large_auto["dtype_policy"] == "mixed_bfloat16"
                                  else run_child("train_ours", {**large, "mixed_precision": True}, args.timeout))
    speedup = {key: round(speed(bfloat16[key]) / speed(float32[key]), 2) for key in float32}
    return {"float32": float32, "bfloat16": bfloat16, "bfloat16_speedup": speedup,
            "auto_picks_here": choose_policy("auto", False, cpu_flags())}


def memory(args, scratch: Path, results: dict) -> dict:
    """Peak RSS of the train_scratch and extract_features stages at each size of ``--memory-sizes``."""
    report = {}
    for total in args.memory_sizes:
        train_per_class, validation_per_class = int(total * 0.4), total // 2 - int(total * 0.4)
        data = split_layout(scratch, train_per_class, validation_per_class, args.image_size, args.seed)
        stage = run_child("train_stage", settings_for(args, data, epochs=1), args.timeout)
        extract = run_child("extract_ours", settings_for(args, data), args.timeout)
        report[str(total)] = {
            "train_scratch_peak_rss_mib": stage["peak_rss_mib"],
            "extract_features_peak_rss_mib": extract["peak_rss_mib"],
            "uint8_cache_mib": round(total * args.image_size**2 * 3 / 1024**2, 1),
        }
    return report


def markdown(report: dict) -> str:
    """The short table the README quotes."""
    lines = ["| benchmark | baseline | ours | ratio (goal) |", "|---|---:|---:|---:|"]
    train = report.get("training")
    if train:
        runs = train["runs"]
        lines.append(f"| train_scratch images/s, fastest whole epoch (median) | tutorial ImageDataGenerator "
                     f"{runs['tutorial']['best_images_per_second']} ({runs['tutorial']['images_per_second']}) "
                     f"| {runs['ours']['best_images_per_second']} ({runs['ours']['images_per_second']}) "
                     f"| {train['ours_vs_tutorial']}x ({train['by_median_epoch']['ours_vs_tutorial']}x) (>= 2x) |")
        lines.append(f"| train_scratch vs compute bound (in-memory images) | bound {runs['bound']['best_images_per_second']} "
                     f"({runs['bound']['images_per_second']}) | {runs['ours']['best_images_per_second']} "
                     f"| {train['ours_vs_bound']} ({train['by_median_epoch']['ours_vs_bound']}) (>= 0.9) |")
        large, bound = runs["large"], runs["large_bound"]
        lines.append(f"| train_scratch vs compute bound, large recipe ({report['settings']['large_image_size']} px, "
                     f"{large['dtype_policy']}) | bound {bound['best_images_per_second']} "
                     f"({bound['images_per_second']}) | {large['best_images_per_second']} ({large['images_per_second']}) "
                     f"| {train['large_vs_large_bound']} ({train['by_median_epoch']['large_vs_large_bound']}) (>= 0.9) |")
        if "ours_auto" in runs:
            auto = runs["ours_auto"]
            lines.append(f"| train_scratch with `mixed_precision: auto` ({auto['dtype_policy']}) vs the tutorial's "
                         f"float32 pipeline | {runs['tutorial']['best_images_per_second']} "
                         f"({runs['tutorial']['images_per_second']}) | {auto['best_images_per_second']} "
                         f"({auto['images_per_second']}) | {train['ours_auto_vs_tutorial']}x "
                         f"({train['by_median_epoch']['ours_auto_vs_tutorial']}x) (>= 2x) |")
        cost = train["augmentation_cost"]
        ms = cost["ms_per_batch_one_thread"]
        lines.append(f"| augmentation CPU per batch, one thread (ms; share of the training step): Keras layers "
                     f"in turn (tutorial's one warp by TensorFlow's kernel) vs ours (one OpenCV warp) | tutorial's "
                     f"{ms['tutorial_layers_in_turn']} ({ms['tutorial_one_warp_tensorflow_kernel']}), modern "
                     f"{ms['modern_layers_in_turn']} | {ms['tutorial_ours']}, {ms['modern_ours']} "
                     f"({cost['augmentation_vs_step']:.0%} of step {ms['train_step']}) | - |")
    extract = report.get("extraction")
    if extract:
        runs = extract["runs"]
        lines.append(f"| extract_features images/s vs VGG16 forward pass | bound {runs['bound']['images_per_second']} "
                     f"| {runs['ours']['images_per_second']} | {extract['ours_vs_bound']} (>= 0.9) |")
    mixed = report.get("precision")
    if mixed:
        for key in ("training", "extraction", "large_training"):
            lines.append(f"| {key.replace('_', ' ')}: bfloat16 vs float32 images/s | float32 {speed(mixed['float32'][key])} "
                         f"| {speed(mixed['bfloat16'][key])} | {mixed['bfloat16_speedup'][key]}x |")
    for total, figures in report.get("memory", {}).items():
        lines.append(f"| peak RSS at {int(total):,} images (MiB): train_scratch / extract_features | - "
                     f"| {figures['train_scratch_peak_rss_mib']} / {figures['extract_features_peak_rss_mib']} | - |")
    dvc = report.get("dvc")
    if dvc:
        lines.append(f"| no-op `dvc status` / `dvc repro`, {dvc['images']:,} images (s) | floor "
                     f"{dvc['floor_dvc_status']['median_seconds']} | {dvc['dvc_status']['median_seconds']} / "
                     f"{dvc['dvc_repro_noop']['median_seconds']} | {dvc['status_vs_floor']}x / {dvc['repro_vs_floor']}x (<= 1.5x) |")
        lines.append(f"| the same against one stage that outputs those files (s) | floor "
                     f"{dvc['outputs_floor_dvc_status']['median_seconds']} | {dvc['dvc_status']['median_seconds']} / "
                     f"{dvc['dvc_repro_noop']['median_seconds']} | {dvc['status_vs_outputs_floor']}x / "
                     f"{dvc['repro_vs_outputs_floor']}x |")
    info = report["machine"]
    lines.append("")
    lines.append(f"{info['cpu']}, {info['cpus']} CPUs, flags: {', '.join(info['cpu_flags']) or 'none of note'}; "
                 f"load average at start {info['load_average_at_start']}; data: {report['data']}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse the arguments, run the chosen sections, write and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a check that every benchmark runs")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--data", type=Path, help="a folder with train/ and validation/ class folders "
                        "(default: --shared split 80/20, else generated images)")
    parser.add_argument("--shared", choices=("kaggle-sample", "kaggle-medium"), default="kaggle-sample",
                        help="the shared photo set to split when --data is not given (kaggle-medium: 3,200/800)")
    parser.add_argument("--image-size", type=int, default=150)
    parser.add_argument("--large-image-size", type=int, default=160, help="the large recipe's image size")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3, help="training epochs timed (the first is reported apart)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--memory-sizes", type=int, nargs="+", default=[1000, 4000], help="images (train + validation)")
    parser.add_argument("--dvc-images", type=int, default=25000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per measurement")
    parser.add_argument("--output", type=Path, default=ROOT / "reports" / "benchmarks.json")
    args = parser.parse_args()
    if args.quick:
        args.image_size, args.large_image_size, args.batch_size, args.epochs, args.repeats = 32, 32, 8, 2, 1
        args.memory_sizes, args.dvc_images = [40, 80], 200

    report: dict = {"machine": machine(), "settings": {k: str(v) for k, v in vars(args).items()}}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="catsdogs-bench-") as folder:
        scratch = Path(folder)
        data = args.data or (None if args.quick else sample_layout(scratch, args.seed, args.shared))
        if data is None:
            data = split_layout(scratch, 20 if args.quick else 400, 5 if args.quick else 100, 375, args.seed)
            report["data"] = f"generated, {data.name}"
        else:
            report["data"] = str(data) if args.data else f"../shared/data/{args.shared}, split 80/20"
        for section in SECTIONS:
            if section not in args.only:
                continue
            print(f"benchmark: {section} ...", flush=True)
            if section == "memory":
                report[section] = memory(args, scratch, report)
            elif section == "dvc":
                report[section] = dvc_noop.measure(scratch / "dvc", args.dvc_images, args.repeats, args.timeout)
            else:
                report[section] = globals()[section](args, data, report)
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    args.output.with_suffix(".md").write_text(table)
    print(table, end="")
    print(f"wrote {args.output} and {args.output.with_suffix('.md')}")


if __name__ == "__main__":
    main()
