"""No-op `dvc status` / `dvc repro` with ruamel.yaml's C parser and with its pure-Python one, interleaved.

DVC parses dvc.yaml, dvc.lock and params.yaml (once per stage that reads params)
with ruamel.yaml; since ruamel.yaml 0.19 the C parser (ruamel.yaml.clib) is an
optional extra, and without it every parse runs in Python. The pure-Python
runs import DVC with ``_ruamel_yaml`` blocked (what ruamel.yaml does when
the C extension is missing). The floor (benchmarks/dvc_noop.py) is measured
the same two ways. Usage: python dvc-yaml-parser.py [WORKSPACE_PARENT] [ROUNDS]
(a parent holding pipeline/ and floor/ from benchmarks.dvc_noop, or none: built
here, 25,000 generated images).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from benchmarks.dvc_noop import floor_workspace, pipeline_workspace  # noqa: E402

BLOCK_C_PARSER = "import sys; sys.modules['_ruamel_yaml'] = None; "
DVC = "import sys; from dvc.cli import main; sys.exit(main(sys.argv[1:]))"


def seconds(cwd: Path, pure: bool, command: list[str]) -> float:
    code = (BLOCK_C_PARSER if pure else "") + DVC
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *command], cwd=cwd, env=env, check=True, timeout=600,
                   capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parent = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    if parent is None:
        parent = Path(tempfile.mkdtemp(prefix="dvc-yaml-"))
        floor_workspace(parent / "floor", pipeline_workspace(parent / "pipeline", 25000, 3600), 3600)
    import ruamel.yaml.main

    assert ruamel.yaml.main.CParser is not None, "ruamel.yaml.clib is not installed"
    cases = {f"{name} {'pure' if pure else 'C'}": (parent / folder, pure, command)
             for pure in (False, True)
             for name, folder, command in (("pipeline status", "pipeline", ["status", "-q"]),
                                           ("pipeline repro", "pipeline", ["repro", "-q"]),
                                           ("floor status", "floor", ["status", "-q"]))}
    for case in cases.values():  # warm the file cache and DVC's state db
        seconds(*case)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):  # interleaved: each round runs every case once
        for name, case in cases.items():
            times[name].append(round(seconds(*case), 2))
    median = {name: statistics.median(values) for name, values in times.items()}
    ratios = {f"{what} vs floor, {parser}": round(median[f"pipeline {what} {parser}"] / median[f"floor status {parser}"], 2)
              for what in ("status", "repro") for parser in ("C", "pure")}
    flags = sorted({flag for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
                    for flag in line.split()[2:] if flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")})
    print(json.dumps({"cpu_flags": flags, "load_average": os.getloadavg(), "rounds": rounds, "seconds": times,
                      "median_seconds": median, "ratios": ratios}, indent=1))


if __name__ == "__main__":
    main()
