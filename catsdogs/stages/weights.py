"""Stage weights: the VGG16 (no top) weights every VGG16 stage uses, as one DVC-tracked file.

``vgg16.weights`` names where they come from:

- ``imagenet``: Keras's own download (its URL and MD5 check; kept in ``$KERAS_HOME/models``);
- ``none``: random weights seeded by ``common.seed`` (tests, offline trials);
- a weights file inside ``paths.local_weights`` (``weights/``), a folder this stage
  depends on in dvc.yaml, so replacing the file at the same path reruns the stage.

Whatever the source, the weights are loaded into VGG16 (every layer must load) and
written in Keras's weights format to ``paths.vgg16_weights``, a DVC output that
extract_features, finetune, submission and ``catsdogs predict`` build VGG16 from.
So the weights are tracked by content: ``dvc push`` shares the file, ``dvc pull``
brings it to a machine without internet access (no download there), and the same
weights give a byte-identical file, so switching between two sources of the same
weights reruns nothing downstream.
"""

from __future__ import annotations

import logging
from pathlib import Path

from catsdogs.core.io import KERAS_WEIGHTS_SUFFIX, atomic_path
from catsdogs.core.params import load_params
from catsdogs.models import vgg

logger = logging.getLogger("weights")


def prepare_weights(source: str, target: str | Path, *, seed: int, local_dir: str | Path) -> dict:
    """Write the VGG16 weights ``source`` names to ``target`` (atomically); their description."""
    target = Path(target)
    if not target.name.endswith(KERAS_WEIGHTS_SUFFIX):
        raise ValueError(
            f"paths.vgg16_weights ({target}) must end with {KERAS_WEIGHTS_SUFFIX} (Keras's weights format)"
        )
    logger.info("VGG16 weights from %s -> %s", source, target)
    base = vgg.base_from_source(source, seed, local_dir)
    with atomic_path(target) as temporary:
        base.save_weights(temporary)
    described = vgg.describe_weights(target)
    logger.info("wrote %s (%.1f MB, sha256 %s)", target, target.stat().st_size / 1e6, described["sha256"][:16])
    return described


def main() -> None:
    """Load params and write paths.vgg16_weights from vgg16.weights."""
    params = load_params()
    prepare_weights(
        params.vgg16.weights, params.paths.vgg16_weights,
        seed=params.common.seed, local_dir=params.paths.local_weights,
    )
