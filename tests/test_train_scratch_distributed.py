"""train_scratch under tf.distribute: mirrored over two logical CPUs, two workers on 127.0.0.1.

Both run in subprocesses: logical devices and multi-worker collectives must be set
up before TensorFlow initializes, which a pytest process that imported it cannot undo.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stages.lib.synthetic import write_split_layout
from tests.conftest import ROOT, run

SIZE = 32

TWO_LOGICAL_CPUS = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from stages.lib.runner import run_stage
from stages.train_scratch import main
run_stage("train_scratch", main)
"""


def prepare(directory: Path, strategy: str, epochs: int) -> None:
    """Generated split folders and a params.yaml selecting ``strategy``."""
    write_split_layout(directory / "data/train", 16, SIZE, seed=1)
    write_split_layout(directory / "data/validation", 8, SIZE, seed=2)
    params = {
        "common": {"image_size": SIZE, "batch_size": 8},
        "train_scratch": {"epochs": epochs, "patience": 5, "strategy": strategy},
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
    env_path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-c", TWO_LOGICAL_CPUS], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": env_path, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distribution: mirrored with 2 replica(s)" in result.stderr
    metrics = json.loads((tmp_path / "reports/scratch/metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["epochs_run"] == 2
    assert (tmp_path / "models/scratch.keras").is_file()


@pytest.mark.slow
def test_multiworker_strategy_trains_with_two_worker_processes(tmp_path):
    chief, other = tmp_path / "worker0", tmp_path / "worker1"
    for directory in (chief, other):  # each worker reads its own copy: only the chief may write
        directory.mkdir()
        prepare(directory, "multiworker", epochs=2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "stages.train_scratch"], cwd=directory, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
            env={**env, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})},
        )
        for index, directory in enumerate((chief, other))
    ]
    try:
        logs = [process.communicate(timeout=240)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
    for process, log in zip(processes, logs):
        assert process.returncode == 0, log[-3000:]
    epochs = [[line.split(" INFO ")[1] for line in log.splitlines() if "stages.lib.multiworker: epoch" in line]
              for log in logs]
    assert len(epochs[0]) == 2 and epochs[0] == epochs[1]  # globally reduced figures agree
    metrics = json.loads((chief / "reports/scratch/metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["train_count"] == 32
    assert (chief / "models/scratch.keras").is_file()
    assert not (other / "models").exists() and not (other / "reports").exists()
    run([sys.executable, "-c", "from stages.lib.model_files import load_model; load_model('models/scratch.keras')"],
        cwd=chief)
