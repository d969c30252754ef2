"""The project's decoder and resize against independent ones: Pillow for decoding, numpy for resizing.

Images of other sizes and aspect ratios than ``image_size`` (the generated data sets
always have it, so nothing else exercises the resize): RGB order, the 0-255 range,
squashing (not cropping) to a square, no swapped height and width.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catsdogs.data.datasets import decode_and_resize, decode_rgb, make_image_dataset
from catsdogs.predict.predictor import read_untrusted_image

SIZE = 24
SHAPES = [(40, 60), (93, 17), (24, 24), (12, 30), (7, 5)]  # (height, width): down, up, same, mixed


def pixels(height: int, width: int, seed: int) -> np.ndarray:
    """uint8 RGB: red grows left to right, green top to bottom, blue is noise (every channel differs)."""
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = np.linspace(0, 255, width, dtype=np.float64).round().astype(np.uint8)[None, :]
    image[..., 1] = np.linspace(255, 0, height, dtype=np.float64).round().astype(np.uint8)[:, None]
    image[..., 2] = rng.integers(0, 256, (height, width))
    return image


def write_png(path: Path, image: np.ndarray) -> Path:
    Image.fromarray(image).save(path, format="PNG")
    return path


def bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """Half-pixel-centre bilinear resize to size x size in float64, rounded: the reference."""
    def axis(count: int):
        source = np.clip((np.arange(size) + 0.5) * count / size - 0.5, 0, count - 1)
        low = np.floor(source).astype(int)
        return low, np.minimum(low + 1, count - 1), source - low

    rows, cols = axis(image.shape[0]), axis(image.shape[1])
    values = image.astype(np.float64)
    top = values[rows[0]] * (1 - rows[2])[:, None, None] + values[rows[1]] * rows[2][:, None, None]
    out = top[:, cols[0]] * (1 - cols[2])[None, :, None] + top[:, cols[1]] * cols[2][None, :, None]
    return np.clip(np.round(out), 0, 255)


@pytest.mark.parametrize("shape", SHAPES)
def test_the_decoder_gives_pillows_rgb_pixels(tmp_path, shape):
    image = pixels(*shape, seed=sum(shape))
    data = write_png(tmp_path / "a.png", image).read_bytes()
    decoded = decode_rgb(data).numpy()
    assert decoded.dtype == np.uint8 and decoded.shape == (*shape, 3)
    np.testing.assert_array_equal(decoded, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))


def test_a_jpeg_decodes_close_to_pillow(tmp_path):
    image = pixels(48, 64, seed=1)
    path = tmp_path / "a.jpg"
    Image.fromarray(image).save(path, format="JPEG", quality=95)
    decoded = decode_rgb(path.read_bytes()).numpy().astype(int)
    reference = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert decoded.shape == reference.shape == (48, 64, 3)
    assert np.abs(decoded - reference).mean() < 2.0  # both libjpeg, with other IDCTs: a level or two apart
    assert np.corrcoef(decoded[..., 0].ravel(), reference[..., 0].ravel())[0, 1] > 0.99  # red is red


@pytest.mark.parametrize("shape", SHAPES)
def test_resizing_squashes_to_a_square_like_an_independent_bilinear_resize(tmp_path, shape):
    image = pixels(*shape, seed=sum(shape))
    path = write_png(tmp_path / "a.png", image)
    expected = bilinear(np.asarray(Image.open(path).convert("RGB")), SIZE)
    got = decode_and_resize(str(path), SIZE).numpy()
    assert got.shape == (SIZE, SIZE, 3) and got.dtype == np.uint8
    difference = np.abs(got.astype(np.float64) - expected)
    assert difference.max() <= 1, difference.max()  # float32 vs float64 rounding at .5
    assert difference.mean() < 0.05, difference.mean()


@pytest.mark.parametrize("shape", SHAPES)
def test_an_untrusted_jpeg_is_read_exactly_as_a_training_image(tmp_path, shape):
    """``catsdogs predict`` and the submission read a plain RGB JPEG as the training pipeline does."""
    path = tmp_path / "a.jpg"
    Image.fromarray(pixels(*shape, seed=sum(shape))).save(path, format="JPEG", quality=90)
    got = read_untrusted_image(path, SIZE, 10**6)
    assert got.shape == (SIZE, SIZE, 3) and got.dtype == np.float32
    np.testing.assert_array_equal(got, decode_and_resize(str(path), SIZE).numpy().astype(np.float32))


def test_the_training_dataset_resizes_other_sizes_the_same_way(tmp_path):
    paths = [write_png(tmp_path / f"{index}.png", pixels(*shape, seed=index)) for index, shape in enumerate(SHAPES)]
    batches = list(make_image_dataset(paths, np.arange(len(paths)), SIZE, 2).as_numpy_iterator())
    images = np.concatenate([batch[0] for batch in batches])
    labels = np.concatenate([batch[1] for batch in batches])
    assert images.shape == (len(SHAPES), SIZE, SIZE, 3) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 255 and images.max() > 200  # 0-255, not 0-1
    for label, image in zip(labels, images):
        expected = bilinear(np.asarray(Image.open(paths[int(label)]).convert("RGB")), SIZE)
        assert np.abs(image - expected).max() <= 1, paths[int(label)].name


@pytest.mark.parametrize("labelled, augmented", [(True, True), (True, False), (False, False)])
def test_every_pipeline_runs_without_the_autotuning_thread(tmp_path, labelled, augmented):
    """Training (augmented or not), evaluation and prediction: dropping an iterator must not wait on
    tf.data's tuning thread (stalls of up to 20 s, catsdogs.data.datasets.without_autotune)."""
    from catsdogs.data.augmentation import batch_augmentation

    paths = [write_png(tmp_path / f"{index}.png", pixels(20, 30, seed=index)) for index in range(4)]
    augment = batch_augmentation(shear=0.2, zoom=0.2, horizontal_flip=True, rotation=0.0, translation=0.0,
                                 contrast=0.0, seed=1) if augmented else None
    dataset = make_image_dataset(paths, np.arange(4) if labelled else None, SIZE, 2, shuffle=labelled,
                                 cache=labelled, augment=augment)
    assert dataset.options().autotune.enabled is False
    assert sum(1 for _ in dataset) == 2


def jpeg_with_repeated_scans(repeats: int) -> bytes:
    """A small progressive JPEG whose last scan comes ``repeats`` more times: decodable, under the
    scan bound, and libjpeg prints "Inconsistent progression sequence…" to file descriptor 2."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 80, 200)).save(buffer, "JPEG", progressive=True, quality=75)
    data = buffer.getvalue()
    last_scan, end = data.rfind(b"\xff\xda"), data.rfind(b"\xff\xd9")
    return data[:end] + data[last_scan:end] * repeats + data[end:]


def test_what_libjpeg_prints_while_predicting_stays_off_the_terminal(tmp_path, capfd, caplog):
    """``catsdogs predict`` decodes a kept file again after its checks: that decode's libjpeg
    messages go to the debug log too, and file descriptor 2 is the terminal's again after it."""
    import os

    path = tmp_path / "inconsistent.jpg"
    path.write_bytes(jpeg_with_repeated_scans(20))
    with caplog.at_level("DEBUG", logger="catsdogs.data.datasets"):
        got = read_untrusted_image(path, SIZE, 10**6)
        os.write(2, b"fd 2 is back\n")
    assert got.shape == (SIZE, SIZE, 3)  # the file is usable: kept, and predicted
    error = capfd.readouterr().err
    assert "Inconsistent progression sequence" not in error
    assert "fd 2 is back" in error
    assert "Inconsistent progression sequence" in caplog.text
