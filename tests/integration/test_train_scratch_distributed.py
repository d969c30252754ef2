"""train_scratch under tf.distribute: mirrored over two logical CPUs, two workers on 127.0.0.1.

Both run in subprocesses: logical devices and multi-worker collectives must be set
up before TensorFlow initializes, which a pytest process that imported it cannot undo.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from catsdogs.sources.synthetic import write_split_layout
from tests.conftest import ROOT, run

SIZE = 32

TWO_LOGICAL_CPUS = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from catsdogs.core.runner import run_stage
from catsdogs.stages.train_scratch import main
run_stage("train_scratch", main)
"""


def prepare(directory: Path, strategy: str, epochs: int) -> None:
    """Generated split folders and a params.yaml selecting ``strategy``."""
    write_split_layout(directory / "data/train", 16, SIZE, seed=1)
    write_split_layout(directory / "data/validation", 8, SIZE, seed=2)
    params = {
        "common": {"image_size": SIZE, "batch_size": 8},
        "train_scratch": {"strategy": strategy},
        "recipes": {"tutorial": {"epochs": epochs, "patience": 5}},
    }
    (directory / "params.yaml").write_text(yaml.safe_dump(params))


def free_ports(count: int) -> list[int]:
    """``count`` TCP ports free on 127.0.0.1 right now."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.mark.slow
def test_mirrored_strategy_trains_on_two_logical_cpus(tmp_path):
    prepare(tmp_path, "mirrored", epochs=2)
    result = run([sys.executable, "-c", TWO_LOGICAL_CPUS], tmp_path, check=False, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distribution: mirrored with 2 replica(s)" in result.stderr
    metrics = json.loads((tmp_path / "reports/scratch/metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["epochs_run"] == 2
    assert (tmp_path / "models/scratch.keras").is_file()


def start_workers(directories: list[Path], logs: list[Path]) -> list[subprocess.Popen]:
    """One ``python -m catsdogs.stages train_scratch`` per directory, a cluster on fresh free ports, output to ``logs``."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(len(directories))]}
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    processes = []
    for index, (directory, log) in enumerate(zip(directories, logs)):
        with log.open("w") as output:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "catsdogs.stages", "train_scratch"], cwd=directory, stdout=output,
                stderr=subprocess.STDOUT, text=True, start_new_session=True,
                env={**env, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})},
            ))
    return processes


def wait_all(processes: list[subprocess.Popen], timeout: float) -> None:
    """Wait for every process under one deadline; stop all of them as soon as one fails or time is up."""
    deadline = time.monotonic() + timeout
    try:
        while any(process.poll() is None for process in processes):
            if any(process.returncode not in (None, 0) for process in processes):
                break  # the others would wait for a peer that is gone
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.mark.slow
def test_multiworker_strategy_trains_with_two_worker_processes(tmp_path):
    chief, other = tmp_path / "worker0", tmp_path / "worker1"
    for directory in (chief, other):  # each worker reads its own copy: only the chief may write
        directory.mkdir()
        prepare(directory, "multiworker", epochs=2)
    log_files = [tmp_path / "worker0.log", tmp_path / "worker1.log"]
    for attempt in range(3):  # a port taken between free_ports() and TensorFlow's bind: new ports, again
        processes = start_workers([chief, other], log_files)
        wait_all(processes, timeout=300)
        logs = [path.read_text() for path in log_files]
        if not any("Address already in use" in log or "Failed to add port" in log for log in logs):
            break
    for process, log in zip(processes, logs):
        assert process.returncode == 0, log[-3000:]
    for process, log in zip(processes, logs):
        assert process.returncode == 0, log[-3000:]
    epochs = [[line.split(" INFO ")[1] for line in log.splitlines() if "catsdogs.train.multiworker: epoch" in line]
              for log in logs]
    assert len(epochs[0]) == 2 and epochs[0] == epochs[1]  # globally reduced figures agree
    metrics = json.loads((chief / "reports/scratch/metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["train_count"] == 32
    assert (chief / "models/scratch.keras").is_file()
    assert not (other / "models").exists() and not (other / "reports").exists()
    run([sys.executable, "-c", "from catsdogs.models.files import load_model; load_model('models/scratch.keras')"],
        cwd=chief)
