"""What computed a model or its features: the versions that change results and the hardware.

Results are bit-exact only on the same software (docs/design.md "Reproducibility"), so each
training stage's ``metrics.json`` and extract_features' ``meta.json`` record it, and
``dvc exp show`` / ``dvc metrics diff`` show when two runs came from different software.
Versions are read from the installed packages' metadata: nothing is imported for them (importing
dvc in a stage process would set up DVC's logging).
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

from catsdogs.models.precision import cpu_flags

# The packages whose versions change what a stage computes (or how DVC tracks it).
PACKAGES = ("tensorflow", "keras", "numpy", "opencv-python-headless", "pillow", "dvc")
# The CPU instructions that decide TensorFlow's kernels and mixed precision.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")


def package_version(name: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name (Linux), or the platform's processor string elsewhere."""
    try:
        for line in Path(cpuinfo).read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def software(devices: list[str] | None = None) -> dict:
    """Python and the :data:`PACKAGES` versions, the CPU with its :data:`CPU_FLAGS`, and the accelerators
    (``devices``: e.g. the GPUs TensorFlow lists; none on a CPU)."""
    flags = cpu_flags()
    return {
        "python": platform.python_version(),
        **{name: package_version(name) for name in PACKAGES},
        "cpu": cpu_model(),
        "cpu_flags": " ".join(flag for flag in CPU_FLAGS if flag in flags),
        "accelerators": ", ".join(devices or []) or "none",
    }


def tensorflow_devices() -> list[str]:
    """The GPUs TensorFlow sees, by name (an empty list on a CPU)."""
    import tensorflow as tf

    return [device.name for device in tf.config.list_physical_devices("GPU")]
