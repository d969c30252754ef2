"""Quieting TensorFlow: :func:`quiet_tensorflow`, called where a stage or the ``catsdogs`` command starts.

It holds back TensorFlow's start-up chatter (CUDA probing on
machines without a GPU, oneDNN and CPU-feature notices), which is not the
stages' output. ``TF_CPP_MIN_LOG_LEVEL`` defaults to 2 (TensorFlow's INFO and
WARNING notices off); set it to 0 to see everything, start-up lines included.
Any other value keeps those lines out too: absl writes them before it reads the
level, so a user's ``TF_CPP_MIN_LOG_LEVEL=2`` alone would not hold them back.

The same rule holds back TensorFlow's warning that a ``tf.function`` "triggered
retracing" 5 times: every Keras model traces its own predict step once per batch
shape (a last, shorter batch is a second shape), and TensorFlow counts the traces
of all models together, so evaluate, which predicts with three models, warned
about tracing that is expected.
"""

import importlib.abc
import importlib.machinery
import logging
import os
import re
import sys
import tempfile

# Lines TensorFlow's C++ side writes to stderr while it loads and probes devices, on
# every machine without a GPU. absl writes them before its logging is initialised,
# so TF_CPP_MIN_LOG_LEVEL cannot hold them back; only these exact lines are dropped.
STARTUP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWE]\d{4} [\d:. ]+\d+ (cudart_stub|cuda_platform|cuda_executor|cuda_diagnostics|port|cpu_feature_guard)"
    r"\.cc:\d+\] .*)$"
)


class _QuietTensorFlowLoader(importlib.abc.Loader):
    """Runs TensorFlow's own loader with stderr captured; lines that are not start-up noise are written back."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with tempfile.TemporaryFile(mode="w+b") as captured:
            sys.stderr.flush()
            saved = os.dup(2)
            os.dup2(captured.fileno(), 2)
            try:
                self.loader.exec_module(module)
                module.config.list_physical_devices()  # the CUDA probe speaks at the first device query
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                module.__loader__ = module.__spec__.loader = self.loader
                captured.seek(0)
                kept = [line for line in captured.read().decode(errors="replace").splitlines()
                        if not STARTUP_NOISE.match(line)]
                if kept:
                    sys.stderr.write("\n".join(kept) + "\n")


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Wraps the loader of the first ``import tensorflow``, then steps aside."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietTensorFlowLoader(spec.loader)
        return spec


def _not_retracing(record: logging.LogRecord) -> bool:
    """False for TensorFlow's "N out of the last N calls to <function> triggered tf.function retracing"."""
    return "triggered tf.function retracing" not in record.getMessage()


def quiet_tensorflow() -> None:
    """Hold back TensorFlow's start-up lines and its retracing warning, unless ``TF_CPP_MIN_LOG_LEVEL=0``.

    Call it before the first ``import tensorflow`` (or ``import keras``): the lines are written while
    TensorFlow loads. Nothing in the package calls it on import; calling it twice does nothing more.
    """
    # INFO and WARNING notices off unless the user chose a level; errors still show.
    if os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2").strip() == "0":
        return
    if "tensorflow" not in sys.modules and not any(isinstance(finder, _QuietTensorFlowFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())
    tensorflow_logger = logging.getLogger("tensorflow")  # TensorFlow's Python-side logger
    if _not_retracing not in tensorflow_logger.filters:
        tensorflow_logger.addFilter(_not_retracing)
