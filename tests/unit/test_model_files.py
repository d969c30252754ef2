"""Model files: the same model always saves to the same bytes, and the file loads as Keras wrote it.

Keras writes the save time and Python object ids into every ``.keras`` archive;
without :func:`catsdogs.models.files.normalize_archive` a retrained model with
identical weights would be a new file to DVC (tests/test_pipeline_features.py
checks that end to end).
"""

from __future__ import annotations

import json
import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from catsdogs.models.files import load_model, renumber_shared_objects, save_model
from catsdogs.models.recipes.tutorial import build_scratch_cnn, make_optimizer

SIZE = 32


def scratch_cnn(weights=None):
    """The tutorial's CNN at 32 px, compiled as train_scratch compiles it: new Python objects each call.

    Keras's names restart as in a new process (a stage saves one model per process).
    """
    import keras

    keras.backend.clear_session()
    model = build_scratch_cnn((SIZE, SIZE, 3), [4, 4, 8], 8, 0.25, 0.5)
    model.compile(optimizer=make_optimizer(0.01, 0.9, None, 5), loss="binary_crossentropy", metrics=["accuracy"])
    if weights is not None:
        model.set_weights(weights)
    return model


def entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def test_the_same_model_saves_to_the_same_bytes(tmp_path: Path) -> None:
    first = scratch_cnn()
    second = scratch_cnn(first.get_weights())  # other objects (other ids), the same weights
    # What Keras alone writes differs: the save time and the shared objects' Python ids.
    first.save(tmp_path / "keras-a.keras")
    save_model(first, tmp_path / "a.keras")
    time.sleep(1.1)  # Keras records the save time to the second
    second.save(tmp_path / "keras-b.keras")
    save_model(second, tmp_path / "b.keras")
    raw_a, raw_b = entries(tmp_path / "keras-a.keras"), entries(tmp_path / "keras-b.keras")
    assert raw_a["metadata.json"] != raw_b["metadata.json"]
    assert raw_a["config.json"] != raw_b["config.json"] and b"shared_object_id" in raw_a["config.json"]

    assert (tmp_path / "a.keras").read_bytes() == (tmp_path / "b.keras").read_bytes()
    normalized = entries(tmp_path / "a.keras")
    assert list(normalized) == list(raw_a)  # the same entries, in Keras's order
    assert normalized["model.weights.h5"] == raw_a["model.weights.h5"]
    assert json.loads(normalized["metadata.json"]) == {"keras_version": json.loads(raw_a["metadata.json"])["keras_version"]}
    with zipfile.ZipFile(tmp_path / "a.keras") as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_other_weights_save_to_other_bytes(tmp_path: Path) -> None:
    model = scratch_cnn()
    save_model(model, tmp_path / "a.keras")
    weights = model.get_weights()
    weights[-1] = weights[-1] + np.float32(1e-6)  # one bias, a little
    save_model(scratch_cnn(weights), tmp_path / "b.keras")
    assert (tmp_path / "a.keras").read_bytes() != (tmp_path / "b.keras").read_bytes()


def test_a_normalized_file_loads_as_the_model_it_saved(tmp_path: Path) -> None:
    model = scratch_cnn()
    images = np.random.default_rng(0).uniform(0, 255, (8, SIZE, SIZE, 3)).astype(np.float32)
    model.fit(images, np.arange(8) % 2, epochs=1, verbose=0)  # the optimizer's state is saved too
    save_model(model, tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")  # safe mode
    np.testing.assert_array_equal(loaded.predict(images, verbose=0), model.predict(images, verbose=0))
    for saved, restored in zip(model.optimizer.variables, loaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(restored))
    for saved, restored in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, restored)


def test_shared_objects_are_numbered_in_order_of_first_appearance() -> None:
    config = {
        "a": {"shared_object_id": 9001, "x": [1, {"shared_object_id": 42}]},
        "b": [{"shared_object_id": 9001}, {"shared_object_id": 7, "name": "shared_object_id"}],
        "shared_object_id": "not an id",
    }
    assert renumber_shared_objects(config, {}) == {
        "a": {"shared_object_id": 1, "x": [1, {"shared_object_id": 2}]},
        "b": [{"shared_object_id": 1}, {"shared_object_id": 3, "name": "shared_object_id"}],
        "shared_object_id": "not an id",
    }


def padded_model(path: Path, members: int, member_bytes: int) -> Path:
    """A valid tiny model plus ``members`` members of zeros under assets/ (a few KB compressed each):
    Keras unpacks every member of such an archive to a temporary folder before it reads any."""
    from tests.tiny_models import tiny_image_model

    save_model(tiny_image_model(0), path)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        for index in range(members):
            archive.writestr(f"assets/pad{index}", bytes(member_bytes))
    return path


@pytest.mark.parametrize(
    ("members", "member_bytes", "expected"),
    [
        (4, 4 * 2**20, r"archive refused: member 'assets/pad0' expands \d+x, over download\.limits\.max_ratio=200"),
        # Each under the per-member ratio floor: the archive's overall ratio refuses them.
        (40, 2**19, r"archive refused: expands \d+x overall, over download\.limits\.max_ratio=200"),
    ],
    ids=["large members", "many small members"],
)
def test_a_padded_model_file_is_refused_before_keras_opens_it(tmp_path, monkeypatch, members, member_bytes, expected):
    import keras

    path = padded_model(tmp_path / "padded.keras", members, member_bytes)
    assert path.stat().st_size < 2**20  # small on disk; what it unpacks to is what counts

    def keras_load(*args, **kwargs):
        raise AssertionError("Keras was handed a model file past the archive limits")

    monkeypatch.setattr(keras.saving, "load_model", keras_load)
    with pytest.raises(ValueError, match=rf"^could not load the model {re.escape(str(path))}: {expected}") as error:
        load_model(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("content", [b"not a zip at all", b"PK\x03\x04" + b"junk" * 50, b""])
def test_a_model_file_that_is_no_zip_is_one_line(tmp_path, content):
    path = tmp_path / "model.keras"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"^could not load the model {re.escape(str(path))}: \S") as error:
        load_model(path)
    assert "\n" not in str(error.value)
