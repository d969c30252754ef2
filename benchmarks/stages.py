"""A per-stage profile of a whole pipeline run: wall time, images/s, peak memory, disk and the time-left estimates.

    python -m benchmarks.stages --synthetic 200 -S vgg16.weights=none --output stages.json   # a quick look
    python -m benchmarks.stages --data ../shared/data/kaggle-sample ../shared/data/kaggle-medium \\
        ../shared/data/kaggle-large -S vgg16.weights=none -S finetune.epochs=1 --output full-scale.json

The second is the full-scale measurement (all the shared photos; hours on a small CPU
machine: give each long stage room with ``--timeout-s``, and ``--work`` on a disk with
a few GB free). The script builds a fresh git + DVC repository from this checkout
(:func:`benchmarks.common.copy_pipeline`) in ``--work`` (a temporary folder by default,
removed at the end unless ``--keep``), writes params.yaml with the photo folders
(``--data``: ``download.source: dir`` and ``download.dir`` the list of folders;
``--synthetic N``: generated photos, N per class) and every ``-S key=value`` (full
dotted keys, values parsed as YAML, as ``dvc exp run -S`` does), sets ``dvc config
cache.type`` when ``--cache-type`` is given (DVC's own default otherwise), commits,
then runs each stage (``--stages``, default all of them, in the order of ``dvc dag``)
with its own ``dvc repro -s <stage>``, with this checkout's venv first on PATH, so
the stages run the copied code with this Python. For each stage it records:

- wall seconds of ``dvc repro -s`` (DVC's hashing and caching included) and, sampled
  from the process tree every 0.2 s, how long the stage's own ``python -m
  catsdogs.stages`` process lived: the rest is DVC's;
- peak RSS: each ``dvc repro -s`` runs under a small wrapper process that reports
  ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` once it has waited for it, so each stage's
  figure is its own. That is the peak of the single largest process among the
  wrapper's descendants (dvc itself, the shell, the stage's python), not a sum: for
  every stage that imports TensorFlow the stage's python; for a cheap stage it may be
  dvc's. The per-process peaks (VmHWM) sampled from /proc say which;
- images the stage processed, read from what the stage wrote (the manifests' file
  counts, reports/data/split.json, the training metrics' ``train_count`` x
  ``epochs_run``, features/meta.json, evaluate's ``n``, the submission's rows), and
  images/s over the stage's wall time; the training stages' own ``images_per_second``
  beside it;
- the time-left estimates the stage logged (catsdogs/core/progress.py: one after the
  first units of work, and for training one after the first epoch), each timestamped
  as the line arrived, against what really remained: the stage process's end (and
  ``dvc repro``'s) minus the time the line was logged;
- disk after the stage: data/, features/, models/, reports/ and .dvc/cache, apparent
  size and allocated blocks, each inode counted once per folder, in the workspace, and
  across workspace and cache together (a workspace file hardlinked to the cache counts
  once there; reflinked copies share blocks that no stat can see, so they count twice).

It writes the JSON (``--output``: the machine with its CPU flags, the params, every
stage's record, the totals; each stage's full output is in ``--work``/logs while it
runs) and prints a markdown table. Figures on a shared machine are noisy: read them
beside each stage's load average, which the JSON records.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from benchmarks.common import ROOT, copy_pipeline, machine
from benchmarks.two_clones import merge

STAGE_TIMEOUT_S = 24 * 3600  # per stage: generous, the full-scale training stages take hours on 2 cores
COMMAND_TIMEOUT_S = 600  # git, dvc init, dvc config, dvc dag
SAMPLE_INTERVAL_S = 0.2  # how often the wrapper samples the process tree
MIB = 2**20
WORKSPACE_FOLDERS = ("data", "features", "models", "reports")
CACHE_FOLDER = ".dvc/cache"
# The project's log format (catsdogs/core/runner.py STAGE_FORMAT): "12:34:56 INFO split: message".
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (?:DEBUG|INFO|WARNING|ERROR|CRITICAL) ([\w.]+): (.*)$")
# catsdogs/core/progress.py's two estimates of the time left.
WORK_ESTIMATE = re.compile(
    r"^(?P<what>.+?): (?P<done>\d+) of (?P<total>\d+) (?P<unit>\S+) in, about (?P<left>.+?) left "
    r"\((?P<rate>[\d.]+) \S+/s\)$")
EPOCH_ESTIMATE = re.compile(
    r"^(?P<what>.+?): first epoch \(validation included\) took (?P<took>.+?): at most about (?P<left>.+?) "
    r"for the other (?P<epochs>\d+) ")
DURATION = re.compile(r"^([\d.]+) (s|min|h)$")
WRAPPER_CALL = ("import sys; sys.path.insert(0, {root!r}); from benchmarks.stages import wrapper; "
                "sys.exit(wrapper(sys.argv[1:]))")


# --- the wrapper: one process per stage, so that RUSAGE_CHILDREN is that stage's alone ---------------------------

def wrapper(argv: list[str]) -> int:
    """``RESULT LOG TIMEOUT_S COMMAND...``: run COMMAND in its own process group, timestamp each line of its
    output as it arrives (all of it into LOG, the stage's log lines echoed to stderr), sample its process tree,
    kill the group after TIMEOUT_S, and write RESULT (JSON): exit code, wall seconds, the lines, the sampled
    per-process peaks and ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` once the command has been waited for."""
    result_path, log_path, timeout_s, command = Path(argv[0]), Path(argv[1]), float(argv[2]), argv[3:]
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    result_path.with_suffix(".pid").write_text(str(process.pid))  # for the parent, should this wrapper hang
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout_s, kill)
    timer.daemon = True
    timer.start()
    done = threading.Event()
    sampled: dict[str, dict] = {}
    sampler = threading.Thread(target=sample_tree, args=(process.pid, started, done, sampled), daemon=True)
    sampler.start()
    lines = []
    with open(log_path, "wb") as log:
        for raw in process.stdout:
            now = time.monotonic() - started
            log.write(raw)
            log.flush()
            # A line logged under a progress bar (tqdm.write) follows the bar's last "\r".
            text = raw.decode("utf-8", "replace").rstrip("\r\n").rpartition("\r")[2]
            if LOG_LINE.match(text):
                lines.append([round(now, 3), text])
                print(text, file=sys.stderr, flush=True)
    returncode = process.wait()
    wall = time.monotonic() - started
    timer.cancel()
    done.set()
    sampler.join(timeout=10)
    result = {
        "returncode": returncode, "timed_out": timed_out.is_set(), "wall_seconds": round(wall, 3),
        # ru_maxrss: KiB on Linux; of the children, the largest single descendant waited for.
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        "wrapper_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "sampled": sampled, "sample_interval_s": SAMPLE_INTERVAL_S, "lines": lines,
    }
    result_path.write_text(json.dumps(result) + "\n")
    return 0


def process_kind(pid: int, root: int) -> str:
    """``stage`` for ``python -m catsdogs.stages NAME``, ``dvc`` for the command the wrapper started, else ``other``
    (the shell DVC runs the stage's command through, git)."""
    if pid == root:
        return "dvc"
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "other"
    return "stage" if b"catsdogs.stages" in arguments else "other"


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (one pass over /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_bytes()
        except OSError:
            continue
        parent = int(stat.rpartition(b")")[2].split()[1])  # the name in parentheses may hold spaces
        children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children.get(pid, []))
    return found


def high_water_kib(pid: int) -> int | None:
    """A process's peak RSS so far (VmHWM, KiB), or None (gone, a zombie)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def sample_tree(root: int, started: float, done: threading.Event, sampled: dict) -> None:
    """Until ``done``: by kind of process (:func:`process_kind`), the highest VmHWM seen and when processes of
    that kind were first and last seen (seconds from ``started``)."""
    if not Path("/proc/self/status").is_file():
        return  # not Linux: ru_maxrss alone
    kinds: dict[int, str] = {}
    while not done.is_set():
        now = round(time.monotonic() - started, 3)
        for pid in descendants(root):
            kind = kinds.setdefault(pid, process_kind(pid, root))
            peak = high_water_kib(pid)
            if peak is None:
                continue
            entry = sampled.setdefault(kind, {"peak_kib": 0, "first_seen_s": now, "last_seen_s": now, "pids": []})
            entry["peak_kib"] = max(entry["peak_kib"], peak)
            entry["last_seen_s"] = now
            if pid not in entry["pids"]:
                entry["pids"].append(pid)
        done.wait(SAMPLE_INTERVAL_S)


# --- the repository, its params and its stages -------------------------------------------------------------------

def environment(repo: Path) -> dict:
    """This venv's bin first on PATH, the repository first on PYTHONPATH (the stages import the copied code)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH", "")]))
    return env


def run(command: list[str], cwd: Path, timeout_s: float = COMMAND_TIMEOUT_S) -> str:
    """A short command in the repository; RuntimeError with its output when it fails."""
    result = subprocess.run(command, cwd=cwd, env=environment(cwd), capture_output=True, text=True, timeout=timeout_s)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed in {cwd}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def parse_override(text: str) -> dict:
    """``a.b.c=VALUE`` -> ``{"a": {"b": {"c": VALUE}}}``, VALUE parsed as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with a dotted KEY, got {text!r}")
    nested: object = yaml.safe_load(value)
    for part in reversed(key.split(".")):
        nested = {part: nested}
    return nested


def build_params(data: list[Path] | None, synthetic: int | None, overrides: list[dict]) -> tuple[dict, dict]:
    """params.yaml of this checkout with the data source and the overrides merged in, validated as the stages
    validate it; and the changes alone."""
    changes: dict = {}
    missing = [str(folder) for folder in data or [] if not folder.is_dir()]
    if missing:
        raise ValueError(f"--data: no such folder: {', '.join(missing)}")
    if data:
        merge(changes, {"download": {"source": "dir", "dir": [str(folder.resolve()) for folder in data]}})
    if synthetic is not None:
        merge(changes, {"download": {"source": "synthetic", "synthetic": {"count": synthetic}}})
    for override in overrides:
        merge(changes, override)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    merge(params, json.loads(json.dumps(changes)))  # a copy: merge() keeps references
    from catsdogs.core.params import validate_params
    from catsdogs.models.recipes import load_recipe

    validate_params(params)  # ValueError naming each bad key: before hours of running, not after
    for name in params.get("recipes") or {}:
        load_recipe(name, params["recipes"])
    return params, changes


def build_repo(repo: Path, params: dict, cache_type: str | None) -> None:
    """A git + DVC repository holding this checkout's pipeline with ``params``, committed."""
    copy_pipeline(repo)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    commands = [["git", "init", "-q"], ["git", "config", "user.email", "stages@example.com"],
                ["git", "config", "user.name", "stages"], ["dvc", "init", "-q"],
                ["dvc", "config", "core.analytics", "false"]]
    if cache_type:
        commands.append(["dvc", "config", "cache.type", cache_type])
    for command in commands + [["git", "add", "-A"], ["git", "commit", "-qm", "pipeline to profile"]]:
        run(command, repo)


def stage_order(repo: Path, requested: list[str] | None) -> list[str]:
    """The stages to run, in a topological order of ``dvc dag`` (ties in dvc.yaml's order); ValueError for an
    unknown stage or one whose upstream stage is not run (a fresh repository has none of its outputs)."""
    names = list(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])
    upstream: dict[str, set[str]] = {name: set() for name in names}
    for before, after in re.findall(r'"([^"]+)" -> "([^"]+)"', run(["dvc", "dag", "--dot"], repo)):
        upstream[after].add(before)
    order: list[str] = []
    while len(order) < len(names):
        ready = [name for name in names if name not in order and upstream[name] <= set(order)]
        if not ready:
            raise ValueError(f"dvc dag has a cycle among {sorted(set(names) - set(order))}")
        order.append(ready[0])
    chosen = set(requested or names)
    unknown = chosen - set(names)
    if unknown:
        raise ValueError(f"no such stage: {', '.join(sorted(unknown))} (dvc.yaml has {', '.join(names)})")
    for name in order:
        missing = upstream[name] - chosen
        if name in chosen and missing:
            raise ValueError(f"stage {name} needs the outputs of {', '.join(sorted(missing))}: add it to --stages")
    return [name for name in order if name in chosen]


# --- what each stage processed, the estimates it logged, the disk ------------------------------------------------

def images_processed(repo: Path, stage: str, paths: dict) -> dict:
    """The images a stage processed, from its own outputs: ``images`` (None for a stage that reads none),
    ``what`` they are, the stage's own images/s where it reports one, and details."""

    def load(path: str) -> dict:
        return json.loads((repo / path).read_text())

    def training(reports: str, what: str) -> dict:
        metrics = load(f"{reports}/metrics.json")
        epochs = metrics.get("epochs_run", 0)
        return {"images": metrics["train_count"] * epochs, "what": what,
                "stage_images_per_second": metrics.get("images_per_second"),
                "details": {"train_count": metrics["train_count"], "epochs_run": epochs,
                            "validation_count": metrics.get("validation_count")}}

    try:
        if stage == "download":
            tree = load(paths["raw_manifest"])["trees"][paths["raw"]]
            test = sum(1 for name in tree if name.startswith("test/"))
            return {"images": len(tree), "what": "files written to the raw folder (its manifest)",
                    "details": {"train": len(tree) - test, "test": test}}
        if stage == "split":
            report = load(paths["split_report"])
            return {"images": report["files"]["checked"], "what": "photos decode-checked (split.json files.checked)",
                    "details": {"train": report["train"]["total"], "validation": report["validation"]["total"],
                                "dropped": report["files"]["dropped"]}}
        if stage == "train_scratch":
            return training(paths["scratch_reports"], "training images x epochs run (metrics.json)")
        if stage == "extract_features":
            counts = load(f"{paths['features']}/meta.json")["counts"]
            return {"images": counts["train"]["total"] + counts["validation"]["total"],
                    "what": "photos through VGG16 (features/meta.json)",
                    "details": {split: counts[split]["total"] for split in ("train", "validation")}}
        if stage == "train_top":
            return training(paths["top_reports"], "feature rows x epochs run (metrics.json)")
        if stage == "finetune":
            return training(paths["finetune_reports"], "training images x epochs run (metrics.json)")
        if stage == "evaluate":
            metrics = load(f"{paths['evaluate_reports']}/metrics.json")
            counts = {model: entry["n"] for model, entry in metrics.items() if isinstance(entry, dict) and "n" in entry}
            return {"images": max(counts.values()) if counts else None,
                    "what": "validation photos, each predicted by every model (metrics.json n)", "details": counts}
        if stage == "submission":
            with open(repo / paths["submission"]) as handle:
                rows = sum(1 for _ in handle) - 1
            return {"images": rows, "what": "test photos predicted (submission rows)"}
    except (OSError, KeyError, ValueError, TypeError) as error:
        return {"images": None, "what": f"not readable: {error}"}
    return {"images": None, "what": "reads no photos"}


def parse_duration(text: str) -> float | None:
    """catsdogs.core.progress.format_duration's ``42 s`` / ``7 min`` / ``2.5 h`` in seconds."""
    match = DURATION.match(text.strip())
    if not match:
        return None
    return float(match.group(1)) * {"s": 1, "min": 60, "h": 3600}[match.group(2)]


def estimates(lines: list, command_end: float, wall_end: float) -> list[dict]:
    """Each time-left estimate among a stage's timestamped log lines against the time that really remained:
    to the end of the stage's process (``actual_remaining_s``) and of ``dvc repro`` (``..._with_dvc_s``)."""
    found = []
    for logged_at, text in lines:
        message = LOG_LINE.match(text).group(2)
        work, epoch = WORK_ESTIMATE.match(message), EPOCH_ESTIMATE.match(message)
        if work:
            done, total, rate = int(work["done"]), int(work["total"]), float(work["rate"])
            # From the counts and the rate (to 0.1 unit/s) where it is finer than the rounded text.
            estimated = (total - done) / rate if rate > 0 else parse_duration(work["left"])
            entry = {"what": work["what"], "kind": "work", "done": done, "total": total, "unit": work["unit"],
                     "estimate_text": work["left"]}
        elif epoch:
            estimated = parse_duration(epoch["left"])
            entry = {"what": epoch["what"], "kind": "after first epoch (an upper bound: early stopping)",
                     "first_epoch_text": epoch["took"], "epochs_left": int(epoch["epochs"]),
                     "estimate_text": f"at most {epoch['left']}"}
        else:
            continue
        actual = command_end - logged_at
        entry.update({
            "logged_at_s": logged_at, "message": message,
            "estimated_remaining_s": None if estimated is None else round(estimated, 1),
            "actual_remaining_s": round(actual, 1), "actual_remaining_with_dvc_s": round(wall_end - logged_at, 1),
            "estimated_over_actual": round(estimated / actual, 2) if estimated is not None and actual > 0 else None,
        })
        found.append(entry)
    return found


def inodes(top: Path) -> dict[tuple[int, int], tuple[int, int, int]]:
    """Every file, folder and link under ``top`` (itself included, links not followed), once per inode:
    (device, inode) -> (apparent bytes, allocated bytes, link count)."""
    found: dict[tuple[int, int], tuple[int, int, int]] = {}
    if not top.exists():
        return found
    paths = [top]
    for folder, folders, files in os.walk(top):
        paths.extend(Path(folder, name) for name in folders + files)
    for path in paths:
        try:
            stat = path.lstat()
        except FileNotFoundError:
            continue
        found[(stat.st_dev, stat.st_ino)] = (stat.st_size, stat.st_blocks * 512, stat.st_nlink)
    return found


def sizes(table: dict) -> dict:
    """Apparent and allocated bytes and the entry count of an :func:`inodes` mapping."""
    return {"apparent_bytes": sum(entry[0] for entry in table.values()),
            "allocated_bytes": sum(entry[1] for entry in table.values()), "entries": len(table)}


def disk_usage(repo: Path) -> dict:
    """The workspace's output folders and DVC's cache, each folder alone, the workspace together, the cache,
    and all of them together counting each inode once (``du -s`` of them all in one call counts the same)."""
    folders = {name: inodes(repo / name) for name in (*WORKSPACE_FOLDERS, CACHE_FOLDER)}
    workspace = {key: entry for name in WORKSPACE_FOLDERS for key, entry in folders[name].items()}
    cache = folders[CACHE_FOLDER]
    shared = {key: entry for key, entry in workspace.items() if key in cache}
    return {
        "folders": {name: sizes(table) for name, table in folders.items()},
        "workspace": sizes(workspace), "cache": sizes(cache), "total_counting_links_once": sizes({**workspace, **cache}),
        "workspace_inodes_in_cache": sizes(shared),  # hardlinks to the cache (cache.type hardlink)
        "workspace_symlinks": sum(1 for name in WORKSPACE_FOLDERS for path in walk_links(repo / name)),
    }


def walk_links(top: Path):
    """Symbolic links under ``top`` (cache.type symlink)."""
    for folder, folders, files in os.walk(top):
        for name in folders + files:
            if Path(folder, name).is_symlink():
                yield Path(folder, name)


def filesystem(path: Path) -> str:
    """The type of the filesystem holding ``path`` (/proc/mounts' longest matching mount point), or ''."""
    best, kind = "", ""
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            point = fields[1].replace("\\040", " ")
            if (str(path) + "/").startswith(point.rstrip("/") + "/") and len(point) >= len(best):
                best, kind = point, fields[2]
    except OSError:
        pass
    return kind


# --- one stage, the whole profile, the table ---------------------------------------------------------------------

def run_stage(repo: Path, logs: Path, stage: str, timeout_s: float) -> dict:
    """``dvc repro -s STAGE`` under the wrapper; the wrapper's result (RuntimeError if the wrapper itself hangs)."""
    result_path = logs / f"{stage}.json"
    command = [sys.executable, "-c", WRAPPER_CALL.format(root=str(ROOT)), str(result_path), str(logs / f"{stage}.log"),
               str(timeout_s), "dvc", "repro", "-s", stage]
    wrapper_process = subprocess.Popen(command, cwd=repo, env=environment(repo), start_new_session=True)

    def kill_both() -> None:
        """The wrapper's process group and dvc's (each in its own session, out of reach of the terminal's Ctrl-C)."""
        pid_file = result_path.with_suffix(".pid")
        for pid in (wrapper_process.pid, int(pid_file.read_text()) if pid_file.is_file() else None):
            try:
                if pid:
                    os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wrapper_process.wait(timeout=60)

    try:
        wrapper_process.wait(timeout=timeout_s + 300)
    except subprocess.TimeoutExpired:
        kill_both()
        raise RuntimeError(f"the wrapper of stage {stage} hung past {timeout_s + 300:.0f} s") from None
    except BaseException:  # Ctrl-C: nothing keeps running behind the user's back
        kill_both()
        raise
    if wrapper_process.returncode or not result_path.is_file():
        raise RuntimeError(f"the wrapper of stage {stage} failed ({wrapper_process.returncode})")
    return json.loads(result_path.read_text())


def stage_record(repo: Path, stage: str, measured: dict, paths: dict, load: list[float]) -> dict:
    """One stage's figures from the wrapper's result, the stage's outputs and the disk."""
    wall = round(measured["wall_seconds"], 2)
    process = measured["sampled"].get("stage")
    command_end = process["last_seen_s"] if process else wall
    command_seconds = round(process["last_seen_s"] - process["first_seen_s"], 1) if process else None
    images = images_processed(repo, stage, paths) if measured["returncode"] == 0 else {"images": None, "what": ""}
    return {
        "stage": stage, "returncode": measured["returncode"], "timed_out": measured["timed_out"],
        "ran": any(LOG_LINE.match(text).group(1) == stage for _, text in measured["lines"]),
        "load_average_before": load,
        "wall_seconds": wall,
        "stage_process_seconds": command_seconds,  # sampled: +- 2 x sample_interval_s
        "dvc_seconds": round(wall - command_seconds, 1) if command_seconds is not None else None,
        "peak_rss_mib": round(measured["peak_rss_kib"] / 1024, 1),
        "peak_rss_is": "getrusage(RUSAGE_CHILDREN).ru_maxrss of the wrapper: the largest single process of the "
                       "stage's tree (dvc, the shell, the stage's python), not a sum",
        "sampled_peak_rss_mib": {kind: round(entry["peak_kib"] / 1024, 1) for kind, entry in measured["sampled"].items()},
        "wrapper_own_rss_mib": round(measured["wrapper_rss_kib"] / 1024, 1),
        "sample_interval_s": measured["sample_interval_s"],
        **images,
        "images_per_second": round(images["images"] / wall, 2) if images.get("images") else None,
        "estimates": estimates(measured["lines"], command_end, wall),
        "log": measured["lines"],
        "disk_after": disk_usage(repo),
    }


def profile(arguments: argparse.Namespace) -> dict:
    """Build the repository, run every stage, return the report (written to ``--output`` as it grows)."""
    params, changes = build_params(arguments.data, arguments.synthetic, arguments.set)
    work = arguments.work
    repo, logs = work / "repo", work / "logs"
    logs.mkdir(parents=True)
    build_repo(repo, params, arguments.cache_type)
    order = stage_order(repo, arguments.stages)
    report = {
        "machine": machine(), "command": sys.argv, "work": str(work), "filesystem": filesystem(repo.resolve()),
        "cache_type": run(["dvc", "config", "cache.type"], repo).strip() if arguments.cache_type else
                      "(DVC's default: reflink,copy)",
        "stage_timeout_s": arguments.timeout_s, "overrides": changes, "params": params, "stages": [],
    }
    print(f"profiling {', '.join(order)} in {repo}; logs in {logs}", file=sys.stderr, flush=True)
    for stage in order:
        load = [round(value, 2) for value in os.getloadavg()]
        measured = run_stage(repo, logs, stage, arguments.timeout_s)
        record = stage_record(repo, stage, measured, params["paths"], load)
        report["stages"].append(record)
        report["totals"] = totals(report["stages"])
        if arguments.output:
            arguments.output.write_text(json.dumps(report, indent=2) + "\n")
        print(f"{stage}: {record['wall_seconds']} s, exit {record['returncode']}", file=sys.stderr, flush=True)
        if record["returncode"] or not record["ran"]:
            tail = (logs / f"{stage}.log").read_text(errors="replace")[-3000:]
            report["error"] = (f"stage {stage} {'timed out' if record['timed_out'] else 'failed'} "
                               f"(exit {record['returncode']}, ran: {record['ran']}):\n{tail}")
            break
    return report


def totals(records: list[dict]) -> dict:
    """Sums and peaks over the stages run so far; the disk after the last."""
    return {
        "wall_seconds": round(sum(record["wall_seconds"] for record in records), 1),
        "stage_process_seconds": round(sum(record["stage_process_seconds"] or 0 for record in records), 1),
        "dvc_seconds": round(sum(record["dvc_seconds"] or 0 for record in records), 1),
        "peak_rss_mib": max(record["peak_rss_mib"] for record in records),
        "disk_after": records[-1]["disk_after"],
    }


def mib(value: float) -> str:
    """Bytes as MiB, at a precision that reads well from a kilobyte to terabytes."""
    value /= MIB
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def estimate_cell(entries: list[dict]) -> str:
    """``what: estimated vs actual s (ratio)`` for each estimate of a stage."""
    cells = []
    for entry in entries:
        prefix = "≤ " if entry["kind"] != "work" else ""
        cells.append(f"{entry['what']} at {seconds(entry['logged_at_s'])} s: {prefix}"
                     f"{seconds(entry['estimated_remaining_s'])} vs {seconds(entry['actual_remaining_s'])} s")
    return "; ".join(cells) or "–"


def markdown(report: dict) -> str:
    """The report as a header and a markdown table, one row per stage and one of totals."""
    info = report["machine"]
    lines = [
        f"{info['cpu']}, {info['cpus']} CPUs ({' '.join(info['cpu_flags']) or 'none of the flags'}), "
        f"{info['memory_gib']} GiB, load {info['load_average_at_start']}; cache.type {report['cache_type']} on "
        f"{report['filesystem'] or '?'}; overrides: {json.dumps(report['overrides'])}",
        "",
        "| stage | wall s (stage's process) | images | images/s (stage's own) | peak RSS MiB (stage's python) "
        "| disk after, MiB allocated: workspace / cache / total (links once) | time left logged: estimated vs actual |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for record in report["stages"]:
        own = record.get("stage_images_per_second")
        rate = "–" if record.get("images_per_second") is None else f"{record['images_per_second']:,.1f}"
        rate += "" if own is None else f" ({own:,.1f})"
        images = "–" if record.get("images") is None else f"{record['images']:,}"
        stage_python = record["sampled_peak_rss_mib"].get("stage")
        stage_python = "?" if stage_python is None else f"{stage_python:,.0f}"
        disk = record["disk_after"]
        lines.append(
            f"| {record['stage']}{'' if record['returncode'] == 0 else ' (FAILED)'} "
            f"| {seconds(record['wall_seconds'])} ({seconds(record['stage_process_seconds'])}) "
            f"| {images} | {rate} | {record['peak_rss_mib']:,.0f} ({stage_python}) "
            f"| {mib(disk['workspace']['allocated_bytes'])} / {mib(disk['cache']['allocated_bytes'])} / "
            f"{mib(disk['total_counting_links_once']['allocated_bytes'])} "
            f"| {estimate_cell(record['estimates'])} |")
    if report["stages"]:
        total = report["totals"]
        disk = total["disk_after"]
        lines.append(
            f"| **total** | {seconds(total['wall_seconds'])} ({seconds(total['stage_process_seconds'])}) | | | "
            f"{total['peak_rss_mib']:,.0f} | {mib(disk['workspace']['allocated_bytes'])} / "
            f"{mib(disk['cache']['allocated_bytes'])} / {mib(disk['total_counting_links_once']['allocated_bytes'])} | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stages", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, nargs="+", help="photo folders (Kaggle's train/ layout): download.dir")
    source.add_argument("--synthetic", type=int, metavar="N", help="generated photos, N per class")
    parser.add_argument("-S", "--set", type=parse_override, action="append", default=[], metavar="KEY=VALUE",
                        help="a params override, full dotted key, value parsed as YAML (repeat it)")
    parser.add_argument("--work", type=Path, default=None, help="an empty or absent folder for the repository")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--cache-type", default=None, help="dvc config cache.type (default: DVC's own)")
    parser.add_argument("--stages", nargs="+", default=None, help="a subset of the stages (default: all)")
    parser.add_argument("--timeout-s", type=float, default=STAGE_TIMEOUT_S, help="per stage")
    parser.add_argument("--output", type=Path, default=None, help="the JSON report")
    arguments = parser.parse_args(argv)
    names = list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
    unknown = set(arguments.stages or []) - set(names)
    if unknown:
        parser.error(f"no such stage: {', '.join(sorted(unknown))} (dvc.yaml has {', '.join(names)})")
    if arguments.work is None:
        arguments.work = Path(tempfile.mkdtemp(prefix="catsdogs-stages-"))
    elif arguments.work.exists() and (not arguments.work.is_dir() or any(arguments.work.iterdir())):
        parser.error(f"--work {arguments.work} is not an empty folder")  # never removed: it is not ours
    arguments.work = arguments.work.resolve()
    try:
        report = profile(arguments)
    except ValueError as error:  # bad params or --stages: nothing ran
        shutil.rmtree(arguments.work, ignore_errors=True)
        parser.error(str(error))
    except BaseException:
        print(f"kept {arguments.work}: the logs are in its logs/", file=sys.stderr)
        raise
    if report.get("error"):
        print(f"kept {arguments.work}: the logs are in its logs/", file=sys.stderr)
    elif not arguments.keep:
        shutil.rmtree(arguments.work, ignore_errors=True)
    if arguments.output:
        arguments.output.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))
    if arguments.output:
        print(f"\nwrote {arguments.output}")
    if report.get("error"):
        print(report["error"], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
