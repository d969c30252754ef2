"""Decode-checking and normalizing images (stages/lib/images.py) on files the tests write."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from stages.lib.images import (
    DROP_REASONS,
    NORMALIZE_REASONS,
    ImageCheck,
    check_image,
    check_images,
    normalize_image,
    pixel_limit,
    write_image,
)

MIN_SIDE = 32
MAX_PIXELS = 5000  # small, so a 100x100 image stands in for a decompression bomb


def noise(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """A noisy image (noise keeps JPEGs large enough to truncate in their scan data)."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1, "CMYK": 4, "RGBA": 4}[mode]
    pixels = rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)


def write_rgb_jpeg(path: Path, width: int = 48, height: int = 40, seed: int = 0) -> Path:
    """An ordinary RGB JPEG."""
    noise(width, height, seed).save(path, format="JPEG", quality=90)
    return path


def write_truncated_jpeg(path: Path) -> Path:
    """A JPEG whose scan data is cut in half: the header reads, the decode fails."""
    buffer = io.BytesIO()
    noise(64, 64).save(buffer, format="JPEG", quality=90)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


def write_exif_rotated(path: Path, width: int = 60, height: int = 40) -> Path:
    """An RGB JPEG stored landscape with EXIF orientation 6 (display rotated 90 degrees clockwise)."""
    image = Image.new("RGB", (width, height), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, width // 3, height))  # a blue left third shows the rotation
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(path, format="JPEG", quality=95, exif=exif)
    return path


def write_bad_files(directory: Path, names: dict[str, str]) -> None:
    """Write one unusable file per reason: ``names`` maps a drop reason to the file name to use."""
    writers = {
        "empty": lambda p: p.write_bytes(b""),
        "not_an_image": lambda p: p.write_text("this is not an image\n"),
        "corrupt": write_truncated_jpeg,
        "too_small": lambda p: write_rgb_jpeg(p, 8, 40),
        "too_large": lambda p: write_rgb_jpeg(p, 100, 100),  # 10,000 > MAX_PIXELS
    }
    for reason, name in names.items():
        writers[reason](directory / name)


def write_odd_files(directory: Path, names: dict[str, str]) -> None:
    """Write one usable-but-odd file per normalize reason: ``names`` maps the reason to the file name."""
    writers = {
        "grayscale": lambda p: noise(40, 36, mode="L").save(p, format="JPEG"),
        "cmyk": lambda p: noise(40, 36, mode="CMYK").save(p, format="JPEG"),
        "not_jpeg": lambda p: noise(40, 36).save(p, format="PNG"),
        "exif_rotated": write_exif_rotated,
    }
    for reason, name in names.items():
        writers[reason](directory / name)


@pytest.mark.parametrize("reason", ["empty", "not_an_image", "corrupt", "too_small", "too_large"])
def test_unusable_files_are_dropped_with_their_reason(tmp_path: Path, reason: str) -> None:
    write_bad_files(tmp_path, {reason: "x.jpg"})
    with pixel_limit(MAX_PIXELS):
        check = check_image(tmp_path / "x.jpg", MIN_SIDE, MAX_PIXELS)
    assert check.drop == reason
    assert not check.ok
    assert check.detail


def test_drop_reasons_are_the_documented_ones() -> None:
    assert set(DROP_REASONS) == {"empty", "not_an_image", "corrupt", "too_small", "too_large"}


@pytest.mark.parametrize("size", [(60, 100), (200, 200)])  # Pillow warns above the limit, errors above twice it
def test_pillow_bomb_guard_is_caught_and_restored(tmp_path: Path, size: tuple[int, int]) -> None:
    path = write_rgb_jpeg(tmp_path / "bomb.jpg", *size)
    before = Image.MAX_IMAGE_PIXELS
    # Our own check is bypassed (max_pixels huge) so Pillow's guard, set by pixel_limit, must fire.
    with pixel_limit(MAX_PIXELS):
        check = check_image(path, MIN_SIDE, max_pixels=10**9)
    assert check.drop == "too_large"
    assert "decompression bomb" in check.detail
    assert Image.MAX_IMAGE_PIXELS == before


def test_pixel_limit_above_pillow_default_lets_large_images_through(tmp_path: Path) -> None:
    path = write_rgb_jpeg(tmp_path / "big.jpg", 200, 200)
    with pixel_limit(40_000):
        assert check_image(path, MIN_SIDE, 40_000).ok
        assert check_image(path, MIN_SIDE, 39_999).drop == "too_large"


def test_plain_rgb_jpeg_is_kept_and_copied_byte_for_byte(tmp_path: Path) -> None:
    source = write_rgb_jpeg(tmp_path / "cat.1.jpg")
    check = check_image(source, MIN_SIDE, MAX_PIXELS)
    assert check == ImageCheck(source, width=48, height=40)
    write_image(check, tmp_path / "out.jpg")
    assert (tmp_path / "out.jpg").read_bytes() == source.read_bytes()


def test_min_side_boundary_is_inclusive(tmp_path: Path) -> None:
    path = write_rgb_jpeg(tmp_path / "edge.jpg", 32, 32)
    assert check_image(path, 32, MAX_PIXELS).ok
    assert check_image(path, 33, MAX_PIXELS).drop == "too_small"


@pytest.mark.parametrize("reason", NORMALIZE_REASONS)
def test_odd_images_are_kept_and_written_as_rgb_jpeg(tmp_path: Path, reason: str) -> None:
    write_odd_files(tmp_path, {reason: "odd.jpg"})
    check = check_image(tmp_path / "odd.jpg", MIN_SIDE, MAX_PIXELS)
    assert check.ok
    assert check.normalize == reason
    write_image(check, tmp_path / "out.jpg")
    with Image.open(tmp_path / "out.jpg") as output:
        assert output.format == "JPEG"
        assert output.mode == "RGB"
        assert output.getexif().get(0x0112, 1) == 1
    # The written file is itself a plain image: checking it again asks for no normalization.
    assert check_image(tmp_path / "out.jpg", MIN_SIDE, MAX_PIXELS).normalize is None


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    source = write_exif_rotated(tmp_path / "rotated.jpg", 60, 40)
    normalize_image(source, tmp_path / "out.jpg")
    with Image.open(source) as original, Image.open(tmp_path / "out.jpg") as output:
        assert output.size == (40, 60)  # width and height swapped
        expected = np.asarray(ImageOps.exif_transpose(original).convert("RGB"), dtype=np.int16)
        actual = np.asarray(output, dtype=np.int16)
    assert np.abs(actual - expected).mean() < 4
    # Orientation 6: the stored left third (blue) ends up at the top.
    assert actual[2, 20, 2] > 200 and actual[2, 20, 0] < 60
    assert actual[-2, 20, 0] > 200 and actual[-2, 20, 2] < 60


def test_transparent_png_is_flattened_on_white(tmp_path: Path) -> None:
    Image.new("RGBA", (40, 40), (0, 0, 0, 0)).save(tmp_path / "clear.jpg", format="PNG")
    normalize_image(tmp_path / "clear.jpg", tmp_path / "out.jpg")
    with Image.open(tmp_path / "out.jpg") as output:
        assert np.asarray(output).min() > 245


def test_writing_a_dropped_image_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dropped"):
        write_image(ImageCheck(tmp_path / "x.jpg", drop="empty"), tmp_path / "out.jpg")


def test_check_images_keeps_the_input_order(tmp_path: Path) -> None:
    paths = [write_rgb_jpeg(tmp_path / f"{index}.jpg", 40 + index, 40, seed=index) for index in range(5)]
    write_bad_files(tmp_path, {"empty": "2.jpg"})
    checks = check_images(paths, MIN_SIDE, MAX_PIXELS)
    assert [check.path for check in checks] == paths
    assert [check.drop for check in checks] == [None, None, "empty", None, None]


def test_normalized_images_decode_in_tensorflow_upright(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    write_odd_files(tmp_path, {"cmyk": "cmyk.jpg", "exif_rotated": "rotated.jpg", "grayscale": "gray.jpg"})
    for name in ("cmyk.jpg", "rotated.jpg", "gray.jpg"):
        check = check_image(tmp_path / name, MIN_SIDE, MAX_PIXELS)
        write_image(check, tmp_path / f"out-{name}")
        decoded = tf.io.decode_image(tf.io.read_file(str(tmp_path / f"out-{name}")), expand_animations=False)
        assert decoded.shape[-1] == 3
        if name == "rotated.jpg":
            assert tuple(decoded.shape[:2]) == (60, 40)  # height, width: upright without EXIF support
