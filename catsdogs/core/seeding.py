"""The one seeding helper, driven by ``common.seed``."""

from __future__ import annotations

import random
import sys

import numpy as np


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and (if imported) TensorFlow/Keras; optionally ask for deterministic ops.

    Deterministic TensorFlow kernels make training bit-exact on one machine and one
    software stack, at a speed cost; without them, some CPU/GPU reductions are
    order-dependent and results differ in the last bits from run to run.
    """
    random.seed(seed)
    np.random.seed(seed)
    if "keras" in sys.modules or "tensorflow" in sys.modules:
        import keras

        keras.utils.set_random_seed(seed)
        if deterministic:
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()
