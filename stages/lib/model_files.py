"""Saving and loading ``.keras`` model files: atomic saves, safe-mode loads, clear errors.

Loading always runs in Keras safe mode (no ``Lambda`` layers, no arbitrary code)
with the project's own layers passed explicitly, so it never depends on which
modules happen to be imported.
"""

from __future__ import annotations

from pathlib import Path

from stages.lib.io import atomic_path


def save_model(model, target: str | Path) -> None:
    """Save a Keras model atomically: a failed save leaves no partial file at ``target``."""
    target = Path(target)
    try:
        with atomic_path(target) as temporary:
            model.save(temporary)
    except OSError as error:
        raise OSError(f"could not save the model to {target}: {error}") from error


def load_model(path: str | Path):
    """Load a ``.keras`` model in Keras safe mode; ``ValueError`` when it is missing, broken or unsafe."""
    import keras

    from stages.lib.layers import CUSTOM_OBJECTS

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model not found: {path} (run the stage that trains it: dvc repro)")
    try:
        return keras.saving.load_model(path, custom_objects=CUSTOM_OBJECTS, safe_mode=True)
    except Exception as error:  # Keras raises many types for a broken or unsafe archive
        raise ValueError(f"could not load the model {path}: {error}") from error
