"""Choosing the tf.distribute strategy a training stage runs under."""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

STRATEGIES = ("auto", "none", "mirrored", "multiworker")


def select_strategy(name: str):
    """The strategy for ``name`` (auto: mirrored when more than one GPU is visible, else none)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "none"
    if name == "none":
        strategy = tf.distribute.get_strategy()
    elif name == "mirrored":
        devices = None  # MirroredStrategy's default: every GPU, else the one CPU
        logical_cpus = tf.config.list_logical_devices("CPU")
        if not gpus and len(logical_cpus) > 1:  # CPU split into logical devices (tests, a CPU box)
            devices = [device.name for device in logical_cpus]
        strategy = tf.distribute.MirroredStrategy(devices)
    elif name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "train strategy 'multiworker' needs TF_CONFIG (the cluster and this worker's index) "
                "in the environment; see README 'Several machines'"
            )
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        raise ValueError(f"unknown strategy {name!r}; allowed: {', '.join(STRATEGIES)}")
    logger.info("distribution: %s with %d replica(s)", name, strategy.num_replicas_in_sync)
    return strategy
