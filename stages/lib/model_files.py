"""Saving and loading ``.keras`` model files: atomic saves, safe-mode loads, clear errors.

Saving gives the same bytes for the same model: Keras writes the time of the save
(``metadata.json``'s ``date_saved``, the archive entries' times) and Python object
ids (``shared_object_id`` in ``config.json``) into every ``.keras`` file, so a
retrained model with identical weights would look new to DVC and rerun every stage
after it (keras-team/keras#15948). :func:`normalize_archive` removes the save time
and numbers shared objects in order of appearance; what Keras loads is unchanged.

Loading always runs in Keras safe mode (no ``Lambda`` layers, no arbitrary code)
with the project's own layers passed explicitly, so it never depends on which
modules happen to be imported.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from stages.lib.io import atomic_path

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def save_model(model, target: str | Path) -> None:
    """Save a Keras model atomically: a failed save leaves no partial file at ``target``."""
    target = Path(target)
    try:
        with atomic_path(target) as temporary:
            model.save(temporary)
            normalize_archive(temporary)
    except OSError as error:
        raise OSError(f"could not save the model to {target}: {error}") from error


def normalize_archive(path: str | Path) -> None:
    """Rewrite a ``.keras`` archive in place so that its bytes depend only on the model.

    Entries keep their order, names, contents and compression; their times become
    :data:`ZIP_EPOCH`; ``metadata.json`` loses ``date_saved`` and ``config.json``'s
    ``shared_object_id`` values become 1, 2, ... in order of first appearance.
    """
    with zipfile.ZipFile(path) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in entries:
            if info.filename == "metadata.json":
                metadata = json.loads(data)
                metadata.pop("date_saved", None)
                data = json.dumps(metadata).encode()
            elif info.filename == "config.json":
                data = json.dumps(renumber_shared_objects(json.loads(data), {})).encode()
            stable = zipfile.ZipInfo(info.filename, date_time=ZIP_EPOCH)
            stable.compress_type = info.compress_type
            stable.create_system = 3  # Unix, whichever system saved it
            stable.external_attr = 0o644 << 16
            archive.writestr(stable, data)


def renumber_shared_objects(config, numbers: dict):
    """``config`` with every ``shared_object_id`` replaced by its rank of first appearance (``numbers``: id -> rank)."""
    if isinstance(config, list):
        return [renumber_shared_objects(item, numbers) for item in config]
    if not isinstance(config, dict):
        return config
    renumbered = {}
    for key, value in config.items():
        if key == "shared_object_id" and isinstance(value, int):
            renumbered[key] = numbers.setdefault(value, len(numbers) + 1)
        else:
            renumbered[key] = renumber_shared_objects(value, numbers)
    return renumbered


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
