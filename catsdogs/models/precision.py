"""The Keras dtype policy: float32, or mixed precision (bfloat16 on a CPU, float16 on a GPU).

``mixed_precision`` params take ``false`` (float32: bit-reproducible across
machines of the same software), ``true`` (mixed precision whatever the hardware)
or ``auto``: float16 on a GPU, bfloat16 on a CPU with bfloat16 instructions
(AVX512-BF16 or AMX), float32 otherwise, where bfloat16 brings no speed.
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo names of the instructions that make bfloat16 fast


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo is not readable."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def choose_policy(setting: bool | str, has_gpu: bool, flags: set[str]) -> str:
    """The dtype policy for a ``mixed_precision`` setting on this hardware (pure: no TensorFlow)."""
    if setting is False:
        return "float32"
    if has_gpu:
        return "mixed_float16"
    if setting is True or any(flag in flags for flag in BF16_CPU_FLAGS):
        return "mixed_bfloat16"
    return "float32"


def set_mixed_precision(setting: bool | str) -> str:
    """Set the global Keras dtype policy for a ``mixed_precision`` setting and return its name."""
    import keras
    import tensorflow as tf

    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    policy = choose_policy(setting, has_gpu, cpu_flags())
    keras.mixed_precision.set_global_policy(policy)
    hardware = "GPU" if has_gpu else ("CPU with bfloat16 instructions" if policy == "mixed_bfloat16" and setting == "auto" else "CPU")
    logger.info("dtype policy: %s (mixed_precision: %s, %s)", policy, str(setting).lower(), hardware)
    return policy
