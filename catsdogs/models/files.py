"""Saving and loading ``.keras`` model files: atomic saves, safe-mode loads, clear errors.

Saving gives the same bytes for the same model: Keras writes the time of the save
(``metadata.json``'s ``date_saved``, the archive entries' times) and Python object
ids (``shared_object_id`` in ``config.json``) into every ``.keras`` file, so a
retrained model with identical weights would look new to DVC and rerun every stage
after it (keras-team/keras#15948). :func:`normalize_archive` removes the save time
and numbers shared objects in order of appearance; what Keras loads is unchanged.

Loading first holds the file to the project's archive limits (a ``.keras`` file is a
zip, and Keras unpacks it), then runs in Keras safe mode (no ``Lambda`` layers, no arbitrary code)
with the project's own layers passed explicitly, so it never depends on which
modules happen to be imported.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from catsdogs.core.io import atomic_path

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
MAX_MESSAGE = 300  # characters of a loading error that a message quotes


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


def check_model_archive(path: Path) -> None:
    """``ValueError`` unless the ``.keras`` archive at ``path`` is within the project's archive limits
    (``download.limits``' defaults: members, total size, compression ratio; no links or odd members).

    Keras unpacks every member of an archive with more than a few to a temporary folder before it
    reads any, and refuses only a single member past its own size and ratio limit, so a small file
    of padded members would write gigabytes. A file that is no zip at all is left to Keras, whose
    message says what a ``.keras`` file must be.
    """
    from catsdogs.core.extract import Limits, check_members
    from catsdogs.core.params import ExtractionLimits

    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError):
        return
    check_members(members, Limits(**ExtractionLimits().model_dump()), archive=path.name)


def load_model(path: str | Path):
    """Load a ``.keras`` model in Keras safe mode, after :func:`check_model_archive`; ``ValueError`` in one
    line when it is missing, past the archive limits, broken or unsafe."""
    import keras

    from catsdogs.models.layers import CUSTOM_OBJECTS

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model not found: {path} (run the stage that trains it: dvc repro)")
    try:
        check_model_archive(path)
        return keras.saving.load_model(path, custom_objects=CUSTOM_OBJECTS, safe_mode=True)
    except Exception as error:  # Keras raises many types for a broken or unsafe archive
        # One line: Keras' messages can run on with the whole config of the layer it could not build.
        text = " ".join(str(error).split("\n", 1)[0].split()) or type(error).__name__
        text = text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "…"
        raise ValueError(f"could not load the model {path}: {text}") from error
