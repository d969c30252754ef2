"""The weights stage: VGG16's weights from imagenet, none or a local file, as one file every VGG16 stage loads.

Keras's download (keras.utils.get_file) cannot reach the network here: the
imagenet test replaces that one call with a file the test writes in the
official file's legacy layout; everything after it is the real code.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from catsdogs.data.datasets import decode_and_resize, list_labelled_images
from catsdogs.models import vgg
from catsdogs.sources.synthetic import write_split_layout
from catsdogs.stages.weights import prepare_weights

SIZE = 32


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def weights_of(path: Path) -> list[np.ndarray]:
    """The weights a VGG16 built from ``path`` (as every later stage builds it) holds."""
    return vgg.build_vgg16_base(SIZE, path).get_weights()


def save_legacy_h5(model, path: Path) -> None:
    """Weights in the legacy Keras .h5 layout of the official vgg16_..._notop.h5 file."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)


def reference_vgg16(seed: int = 7):
    keras.utils.set_random_seed(seed)
    return keras.applications.VGG16(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))


def test_none_gives_the_same_file_for_a_seed_and_another_for_another_seed(tmp_path):
    first = tmp_path / "a.weights.h5"
    prepare_weights("none", first, seed=42, local_dir=tmp_path)
    prepare_weights("none", tmp_path / "b.weights.h5", seed=42, local_dir=tmp_path)
    prepare_weights("none", tmp_path / "c.weights.h5", seed=43, local_dir=tmp_path)
    assert sha256(first) == sha256(tmp_path / "b.weights.h5")  # byte-identical: DVC sees no change
    assert sha256(first) != sha256(tmp_path / "c.weights.h5")
    assert not all(np.array_equal(a, b) for a, b in zip(weights_of(first), weights_of(tmp_path / "c.weights.h5")))


@pytest.mark.parametrize("file_name", ["vgg16.weights.h5", vgg.NOTOP_WEIGHTS_FILE])
def test_a_local_file_in_the_weights_folder_gives_its_weights_and_features(tmp_path, monkeypatch, file_name):
    from catsdogs.stages.extract_features import extract_features

    monkeypatch.chdir(tmp_path)
    reference = reference_vgg16()  # not common.seed: the file's weights must be what is used
    (tmp_path / "weights").mkdir()
    local = tmp_path / "weights" / file_name
    if file_name.endswith(".weights.h5"):
        reference.save_weights(local)
    else:
        save_legacy_h5(reference, local)  # the layout of Keras's download
    target = Path("models/vgg16_notop.weights.h5")
    described = prepare_weights(f"weights/{file_name}", target, seed=0, local_dir="weights")
    assert described == {"file": target.name, "sha256": sha256(target)}
    assert all(np.array_equal(a, b) for a, b in zip(weights_of(target), reference.get_weights()))

    write_split_layout(tmp_path / "train", 3, SIZE, seed=1)
    meta = extract_features({"train": tmp_path / "train"}, tmp_path / "features", SIZE, 4, target, "vgg16", False)
    paths, _ = list_labelled_images(tmp_path / "train")
    images = np.stack([decode_and_resize(str(path), SIZE).numpy() for path in paths]).astype(np.float32)
    expected = reference.predict(keras.applications.vgg16.preprocess_input(images.copy()), verbose=0)
    np.testing.assert_allclose(np.load(tmp_path / "features/train_features.npy"), expected, rtol=1e-5, atol=1e-4)
    assert meta["weights"] == described  # features/meta.json names the weights file by its hash


def test_imagenet_goes_through_keras_download_and_its_hash_check(tmp_path, monkeypatch):
    reference = reference_vgg16(3)
    downloaded = tmp_path / "keras-cache" / vgg.NOTOP_WEIGHTS_FILE
    downloaded.parent.mkdir()
    save_legacy_h5(reference, downloaded)
    calls = []

    def get_file(fname, origin, **kwargs):  # keras.utils.get_file: the network boundary
        calls.append((fname, origin, kwargs))
        return str(downloaded)

    monkeypatch.setattr(keras.utils, "get_file", get_file)
    target = tmp_path / "models" / "vgg16_notop.weights.h5"
    prepare_weights("imagenet", target, seed=0, local_dir=tmp_path / "weights")
    assert calls == [(vgg.NOTOP_WEIGHTS_FILE, vgg.NOTOP_WEIGHTS_URL,
                      {"cache_subdir": "models", "file_hash": vgg.NOTOP_WEIGHTS_MD5})]
    assert all(np.array_equal(a, b) for a, b in zip(weights_of(target), reference.get_weights()))


def test_imagenet_download_failure_says_how_to_get_the_weights_offline(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        # What keras.utils.get_file raises without network (seen on this machine).
        raise Exception(f"URL fetch failure on {vgg.NOTOP_WEIGHTS_URL}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    target = tmp_path / "vgg16_notop.weights.h5"
    with pytest.raises(ValueError) as error:
        prepare_weights("imagenet", target, seed=0, local_dir=tmp_path)
    message = str(error.value)
    assert vgg.NOTOP_WEIGHTS_FILE in message and vgg.NOTOP_WEIGHTS_URL in message
    assert "dvc pull" in message and "vgg16.weights" in message and "Name or service not known" in message
    assert not target.exists()


def test_a_local_file_outside_the_weights_folder_is_refused(tmp_path, monkeypatch):
    """Outside paths.local_weights DVC would not see the file replaced at the same path."""
    monkeypatch.chdir(tmp_path)
    reference_vgg16().save_weights(tmp_path / "elsewhere.weights.h5")
    (tmp_path / "weights").mkdir()
    for source in ("elsewhere.weights.h5", str(tmp_path / "elsewhere.weights.h5"), "weights/../elsewhere.weights.h5"):
        with pytest.raises(ValueError, match=r"must be imagenet, none, or a weights file inside weights/"):
            prepare_weights(source, "out.weights.h5", seed=0, local_dir="weights")
    assert not (tmp_path / "out.weights.h5").exists()


def write_corrupt(path: Path) -> None:
    path.write_bytes(b"not an HDF5 file" * 64)


def write_other_architecture(path: Path) -> None:
    small = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten()])
    small.save_weights(path)


def write_vgg19(path: Path) -> None:
    keras.applications.VGG19(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3)).save_weights(path)


def write_first_block_only(path: Path) -> None:
    """The first block of VGG16 only: Keras refuses it for the layers it lacks."""
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    keras.Model(base.input, base.get_layer("block1_pool").output).save_weights(path)


BAD_FILES = [
    (None, "not found"),
    (write_corrupt, "not a VGG16"),
    (write_other_architecture, "not a VGG16"),
    (write_vgg19, "not a VGG16"),
    (write_first_block_only, "not a VGG16.*block2_conv1"),
]


@pytest.mark.parametrize("writer, message", BAD_FILES)
def test_a_bad_local_file_is_a_clear_error_naming_it(tmp_path, monkeypatch, writer, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights").mkdir()
    source = "weights/bad.weights.h5"
    if writer is not None:
        writer(tmp_path / source)
    with pytest.raises(ValueError, match=message) as error:
        prepare_weights(source, "models/vgg16_notop.weights.h5", seed=0, local_dir="weights")
    assert source in str(error.value)
    assert not (tmp_path / "models/vgg16_notop.weights.h5").exists()


@pytest.mark.parametrize("writer, message", BAD_FILES)
def test_a_bad_weights_file_is_a_clear_error_where_a_stage_loads_it(tmp_path, writer, message):
    """paths.vgg16_weights replaced by hand, or a truncated pull: the loading stage names the file."""
    path = tmp_path / "weights.weights.h5"
    if writer is not None:
        writer(path)
    with pytest.raises(ValueError, match=message) as error:
        vgg.build_vgg16_base(SIZE, str(path))
    assert str(path) in str(error.value)


def test_a_file_that_leaves_layers_unloaded_is_refused(tmp_path, monkeypatch):
    """Some Keras versions and layouts skip layers with a warning only: the NaN sentinels catch that."""
    path = tmp_path / "partial.weights.h5"
    path.write_bytes(b"")  # its content is never read: load_weights is replaced below
    donor = keras.applications.VGG16(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))

    def load_first_block_only(model, filepath, **kwargs):
        for name in ("block1_conv1", "block1_conv2"):
            model.get_layer(name).set_weights(donor.get_layer(name).get_weights())

    monkeypatch.setattr(keras.Model, "load_weights", load_first_block_only)
    with pytest.raises(ValueError, match="does not match VGG16's architecture: no weights for block2_conv1") as error:
        vgg.build_vgg16_base(SIZE, str(path))
    assert str(path) in str(error.value) and "block1_conv1" not in str(error.value)


def test_the_output_must_have_keras_weights_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"paths.vgg16_weights .* must end with .weights.h5"):
        prepare_weights("none", tmp_path / "vgg16.h5", seed=0, local_dir=tmp_path)


