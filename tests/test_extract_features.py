"""extract_features: shapes, row/label/file alignment, streaming to disk, weights sources, bad input."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import yaml

from stages import extract_features as stage
from stages.lib import features as feature_files
from stages.lib import vgg
from stages.lib.data import decode_and_resize, list_labelled_images
from stages.lib.synthetic import write_split_layout
from tests.conftest import ROOT, run

SIZE = 32  # VGG16's smallest input: features 1 x 1 x 512


@pytest.fixture(autouse=True)
def float32_policy():
    """Every test starts and ends with the default dtype policy (mixed precision is global)."""
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


def make_project(root: Path, cats: int = 7, dogs: int = 3, params: dict | None = None) -> Path:
    """A folder with params.yaml and an unbalanced data/train (cats, dogs) plus data/validation (2, 2)."""
    root.mkdir(parents=True, exist_ok=True)
    write_split_layout(root / "data" / "train", max(cats, dogs), SIZE, seed=1)
    for name, keep in (("cat", cats), ("dog", dogs)):
        for index in range(keep, max(cats, dogs)):
            (root / "data" / "train" / f"{name}s" / f"{name}.{index}.jpg").unlink()
    write_split_layout(root / "data" / "validation", 2, SIZE, seed=2)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["common"].update(image_size=SIZE, batch_size=4)
    raw["extract_features"].update({"weights": "none", **(params or {})})
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return root


def extract(split_dirs: dict, output: Path, weights: str = "none", mixed_precision: bool = False, seed: int = 42):
    """Run the stage's extraction function at the test size."""
    return stage.extract_features(split_dirs, output, SIZE, 4, weights, "vgg16", mixed_precision, seed)


def test_unbalanced_split_rows_labels_and_files_agree(tmp_path, monkeypatch):
    project = make_project(tmp_path / "project")
    calls = []
    real_open_memmap = np.lib.format.open_memmap

    def spy(filename, mode="r+", **kwargs):
        calls.append((Path(filename).name, mode))
        return real_open_memmap(filename, mode=mode, **kwargs)

    monkeypatch.setattr(np.lib.format, "open_memmap", spy)
    # Re-map every 3 rows (3 x 512 x 4 bytes): the writer must resume at the right row.
    monkeypatch.setattr(feature_files, "REMAP_BYTES", 3 * 512 * 4)
    monkeypatch.chdir(project)
    stage.main()

    features_dir = project / "features"
    train, train_labels = feature_files.load_split(features_dir, "train")
    assert train.shape == (10, 1, 1, 512) and train.dtype == np.float32
    assert train_labels.tolist() == [0] * 7 + [1] * 3
    names = (features_dir / "train_files.txt").read_text().splitlines()
    assert names == [f"cats/cat.{i}.jpg" for i in range(7)] + [f"dogs/dog.{i}.jpg" for i in range(3)]
    # A row matches its file: the features of one image computed alone equal its row.
    model = vgg.vgg16_image_model(vgg.build_vgg16_base(SIZE, "none", 42), "vgg16", SIZE)
    for row in (0, 6, 7, 9):
        image = decode_and_resize(str(project / "data" / "train" / names[row]), SIZE)[None]
        np.testing.assert_allclose(model.predict_on_batch(image)[0], train[row], rtol=1e-5, atol=1e-5)
    validation, validation_labels = feature_files.load_split(features_dir, "validation")
    assert validation.shape == (4, 1, 1, 512) and validation_labels.tolist() == [0, 0, 1, 1]

    meta = json.loads((features_dir / "meta.json").read_text())
    assert meta["counts"]["train"] == {"total": 10, "cats": 7, "dogs": 3}
    assert meta["feature_shape"] == [1, 1, 512] and meta["image_size"] == SIZE
    assert meta["preprocessing"] == "vgg16" and meta["dtype_policy"] == "float32"
    assert meta["weights"] == {"source": "none", "seed": 42}
    # Streamed: created with w+ and re-opened (r+) as rows accumulate; no temporary folders left behind.
    assert ("train_features.npy", "w+") in calls and ("validation_features.npy", "w+") in calls
    assert calls.count(("train_features.npy", "r+")) == 2  # after rows 4 and 8 (batches of 4 >= 3 rows)
    assert sorted(p.name for p in project.iterdir()) == ["data", "features", "params.yaml"]


BOUNDED_MEMORY_CHILD = """
import re, sys
import numpy as np
from stages.lib import features

def peak_mib():
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024

class Constant:  # stands in for VGG16: 4 x 4 x 512 float32 rows (32 KiB each)
    output_shape = (None, 4, 4, 512)
    def predict_on_batch(self, batch):
        return np.full((len(batch), 4, 4, 512), 0.5, np.float32)

rows = 8000  # a 250 MiB features file
batches = (np.zeros((32, 1), np.float32) for _ in range(rows // 32))
before = peak_mib()
features.write_split(Constant(), batches, rows, sys.argv[1], "train")
print(peak_mib() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from /proc")
def test_writing_features_keeps_memory_bounded(tmp_path):
    """A 250 MiB feature file is written with far less than 250 MiB of extra peak resident memory."""
    result = run([sys.executable, "-c", BOUNDED_MEMORY_CHILD, str(tmp_path)], ROOT)
    growth_mib = float(result.stdout.strip().splitlines()[-1])
    written = np.load(tmp_path / "train_features.npy", mmap_mode="r")
    assert written.shape == (8000, 4, 4, 512) and float(written[-1, -1, -1, -1]) == 0.5
    # Re-mapping every 64 MiB (features.REMAP_BYTES) bounds the mapped, resident part;
    # holding the rows in RAM, or one map for the whole file, would add >= 250 MiB.
    assert growth_mib < 128


def test_weights_none_is_reproducible_and_seeded(tmp_path):
    write_split_layout(tmp_path / "train", 2, SIZE, seed=1)
    dirs = {"train": tmp_path / "train"}
    extract(dirs, tmp_path / "a", seed=42)
    extract(dirs, tmp_path / "b", seed=42)
    extract(dirs, tmp_path / "c", seed=43)
    first = np.load(tmp_path / "a" / "train_features.npy")
    assert np.array_equal(first, np.load(tmp_path / "b" / "train_features.npy"))
    assert not np.allclose(first, np.load(tmp_path / "c" / "train_features.npy"))


@pytest.mark.slow
def test_weights_none_are_the_same_in_a_fresh_process():
    """finetune rebuilds the random VGG16 in another process: it must equal extract_features's."""

    def digest_code() -> str:
        return (
            "import hashlib, numpy as np; from stages.lib import vgg; "
            f"base = vgg.build_vgg16_base({SIZE}, 'none', 42); "
            "print(hashlib.sha256(b''.join(np.asarray(w).tobytes() for w in base.get_weights())).hexdigest())"
        )

    other = run([sys.executable, "-c", digest_code()], ROOT).stdout.strip().splitlines()[-1]
    here = {}
    exec(digest_code().replace("print(", "here['digest'] = ("), {"here": here})
    assert other == here["digest"]


def test_preprocessing_layer_matches_keras_preprocess_input():
    images = np.random.default_rng(0).uniform(0, 255, size=(2, SIZE, SIZE, 3)).astype("float32")
    expected = keras.applications.vgg16.preprocess_input(images.copy())
    np.testing.assert_allclose(vgg.ImagePreprocessing("vgg16")(images), expected, atol=1e-4)
    np.testing.assert_allclose(vgg.ImagePreprocessing("rescale")(images), images / 255, atol=1e-6)
    with pytest.raises(ValueError, match="not one of vgg16, rescale"):
        vgg.ImagePreprocessing("caffe")


def save_legacy_h5(model, path: Path) -> None:
    """Write weights in the legacy Keras .h5 layout of the official vgg16_..._notop.h5 file."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)


@pytest.mark.parametrize("file_name", ["vgg16.weights.h5", vgg.NOTOP_WEIGHTS_FILE])
def test_local_weights_file_gives_the_in_memory_models_features(tmp_path, file_name):
    keras.utils.set_random_seed(7)  # not common.seed: the file's weights must be what is used
    reference = keras.applications.VGG16(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    weights_file = tmp_path / file_name
    if file_name.endswith(".weights.h5"):
        reference.save_weights(weights_file)
    else:
        save_legacy_h5(reference, weights_file)
    write_split_layout(tmp_path / "train", 3, SIZE, seed=1)
    meta = extract({"train": tmp_path / "train"}, tmp_path / "features", weights=str(weights_file))

    paths, _ = list_labelled_images(tmp_path / "train")
    images = np.stack([decode_and_resize(str(path), SIZE).numpy() for path in paths]).astype(np.float32)
    expected = reference.predict(keras.applications.vgg16.preprocess_input(images.copy()), verbose=0)
    got = np.load(tmp_path / "features" / "train_features.npy")
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    written = json.loads((tmp_path / "features" / feature_files.META_FILE).read_text())
    file_hash = hashlib.sha256(weights_file.read_bytes()).hexdigest()
    for recorded in (meta["weights"], written["weights"]):
        assert recorded["source"] == "file"
        assert recorded["sha256"] == file_hash  # the file's own hash, as features/meta.json records it


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


@pytest.mark.parametrize(
    "writer, message",
    [
        (None, "not found"),
        (write_corrupt, "not a VGG16"),
        (write_other_architecture, "not a VGG16"),
        (write_vgg19, "not a VGG16"),
        (write_first_block_only, "not a VGG16.*block2_conv1"),
    ],
)
def test_bad_weights_file_is_a_clear_error_naming_it(tmp_path, writer, message):
    path = tmp_path / "weights.weights.h5"
    if writer is not None:
        writer(path)
    with pytest.raises(ValueError, match=message) as error:
        vgg.build_vgg16_base(SIZE, str(path), seed=0)
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
        vgg.build_vgg16_base(SIZE, str(path), seed=0)
    assert str(path) in str(error.value) and "block1_conv1" not in str(error.value)


def test_imagenet_download_failure_says_how_to_supply_a_local_file(monkeypatch):
    def offline(*args, **kwargs):
        # What keras.utils.get_file raises without network (seen on this machine).
        raise Exception(f"URL fetch failure on {vgg.NOTOP_WEIGHTS_URL}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(ValueError) as error:
        vgg.build_vgg16_base(SIZE, "imagenet", seed=0)
    message = str(error.value)
    assert vgg.NOTOP_WEIGHTS_FILE in message and vgg.NOTOP_WEIGHTS_URL in message
    assert "extract_features.weights" in message and "Name or service not known" in message


def test_mixed_precision_features_are_float32_and_close(tmp_path):
    write_split_layout(tmp_path / "train", 3, SIZE, seed=1)
    dirs = {"train": tmp_path / "train"}
    extract(dirs, tmp_path / "fp32")
    meta = extract(dirs, tmp_path / "bf16", mixed_precision=True)
    assert meta["dtype_policy"] == "mixed_bfloat16"
    full = np.load(tmp_path / "fp32" / "train_features.npy")
    half = np.load(tmp_path / "bf16" / "train_features.npy")
    assert half.dtype == np.float32 and half.shape == full.shape
    # bfloat16 keeps 8 significant bits (relative step 2^-8 = 0.4 %); over 13 convolutions the
    # rounding accumulates to a few percent, and a bug (wrong preprocessing, wrong weights)
    # gives errors of order 100 %. 10 % separates the two.
    relative = np.linalg.norm(half - full) / np.linalg.norm(full)
    assert 0 < relative < 0.10


@pytest.mark.slow
def test_stage_reports_a_missing_weights_file_in_one_line(tmp_path):
    project = make_project(tmp_path / "project", params={"weights": "missing/vgg16.h5"})
    result = run([sys.executable, "-m", "stages.extract_features"], project, check=False)
    assert result.returncode == 1
    assert "VGG16 weights file not found: missing/vgg16.h5" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project / "features").exists()
