"""Before/after/floor no-op timings, interleaved round by round on one 25,000-image workspace.

build: the pipeline workspace (this branch's code, via benchmarks.dvc_noop), the floor, and a
'before' copy (data hard-linked, DVC state copied) whose dvc.yaml is main's (folders as deps),
its lock recorded by `dvc commit -f` so that its status is a genuine no-op.
time: rounds of floor status, before status/repro, after status/repro.
"""
import json, os, shutil, statistics, subprocess, sys, time
from pathlib import Path
from benchmarks import dvc_noop

scratch, images, phase = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
T = 3600
pipeline, floor, before = scratch / "pipeline", scratch / "floor", scratch / "before"

def linked(src, dst):
    parts = Path(src).relative_to(pipeline).parts
    if parts[0] in ("data", "features", "models") or parts[:2] == (".dvc", "cache"):
        os.link(src, dst)
    else:
        shutil.copy2(src, dst)

if phase == "build":
    t = time.perf_counter()
    dvc_noop.pipeline_workspace(pipeline, images, T)
    print("pipeline built", round(time.perf_counter() - t), "s", flush=True)
    dvc_noop.floor_workspace(floor, pipeline, T)
    shutil.copytree(pipeline, before, copy_function=linked, symlinks=True)
    old = subprocess.run(["git", "-C", sys.argv[4], "show", "8620815:dvc.yaml"], capture_output=True, text=True, check=True).stdout
    (before / "dvc.yaml").write_text(old)
    dvc_noop._run(["dvc", "commit", "-f", "-q"], before, T)
    for repo in (pipeline, floor, before):
        out = subprocess.run(["dvc", "status", "--json"], cwd=repo, capture_output=True, text=True, timeout=T).stdout
        print(repo.name, "status:", out.strip()[:300], flush=True)
    print("built")
else:
    rounds = int(sys.argv[4])
    cases = [("floor_status", floor, "status"), ("before_status", before, "status"), ("after_status", pipeline, "status"),
             ("before_repro", before, "repro"), ("after_repro", pipeline, "repro")]
    for name, repo, cmd in cases:  # warm-up
        dvc_noop._run(["dvc", cmd, "-q"], repo, T)
    seconds = {name: [] for name, _, _ in cases}
    for r in range(rounds):
        for name, repo, cmd in cases:
            seconds[name].append(round(dvc_noop._run(["dvc", cmd, "-q"], repo, T), 2))
        print(r, {k: v[-1] for k, v in seconds.items()}, os.getloadavg(), flush=True)
    med = {k: statistics.median(v) for k, v in seconds.items()}
    f = med["floor_status"]
    result = {"images": images, "seconds": seconds, "median": med,
              "ratios_vs_floor": {k: round(v / f, 2) for k, v in med.items()}, "loadavg_end": os.getloadavg()}
    print(json.dumps(result, indent=1))
    (scratch / "interleaved.json").write_text(json.dumps(result, indent=1))
