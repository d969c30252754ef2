"""The Keras dtype policy: float32, or mixed precision (bfloat16 on a CPU, float16 on a GPU)."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def set_mixed_precision(enabled: bool) -> str:
    """Set the global Keras dtype policy and return its name: mixed on request, else float32."""
    import keras
    import tensorflow as tf

    if not enabled:
        policy = "float32"
    elif tf.config.list_physical_devices("GPU"):
        policy = "mixed_float16"
    else:
        policy = "mixed_bfloat16"
    keras.mixed_precision.set_global_policy(policy)
    logger.info("dtype policy: %s", policy)
    return policy
