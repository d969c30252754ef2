"""Decode-checking and normalizing untrusted images (catsdogs/data/images.py) on files the tests write."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from catsdogs.data.images import (
    DROP_REASONS,
    NORMALIZE_REASONS,
    ImageCheck,
    check_image,
    check_images,
    pixel_limit,
    prepare_image,
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


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and a correct CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_chunk(kind: bytes, data: bytes, size: int = 40) -> bytes:
    """A small RGB PNG with one extra chunk right after IHDR."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (10, 120, 200)).save(buffer, format="PNG")
    png = buffer.getvalue()
    after_ihdr = 8 + 25  # signature, then IHDR: 4 length + 4 type + 13 data + 4 CRC
    return png[:after_ihdr] + png_chunk(kind, data) + png[after_ihdr:]


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


def check(path: Path, min_side: int = MIN_SIDE, max_pixels: int = MAX_PIXELS) -> ImageCheck:
    """check_image with a staging folder beside the file (the split keeps one beside its outputs)."""
    staging = path.parent / "staging"
    staging.mkdir(exist_ok=True)
    return check_image(path, min_side, max_pixels, staging)


@pytest.mark.parametrize("reason", DROP_REASONS)  # every documented reason has a file that produces it
def test_unusable_files_are_dropped_with_their_reason(tmp_path: Path, reason: str) -> None:
    write_bad_files(tmp_path, {reason: "x.jpg"})
    result = check(tmp_path / "x.jpg")
    assert result.drop == reason
    assert not result.ok
    assert result.detail


@pytest.mark.parametrize("size", [(60, 100), (200, 200)])  # Pillow warns above the limit, errors above twice it
def test_pixel_limit_turns_pillow_bomb_guard_into_an_error_and_restores_it(tmp_path: Path, size) -> None:
    path = write_rgb_jpeg(tmp_path / "bomb.jpg", *size)
    before = Image.MAX_IMAGE_PIXELS
    expected = Image.DecompressionBombError if size == (200, 200) else Image.DecompressionBombWarning
    with pixel_limit(MAX_PIXELS), pytest.raises(expected):
        Image.open(path).load()
    assert Image.MAX_IMAGE_PIXELS == before


def test_every_decode_runs_under_the_configured_limit_even_above_pillows_own(tmp_path: Path, monkeypatch) -> None:
    # Scaled down: Pillow's own limit (89 Mpx by default) stands at 1,000 px here and images.max_pixels is
    # raised above twice it. A PNG behind a .jpg name is re-encoded: that decode too must use max_pixels.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    noise(60, 60).save(tmp_path / "cat.1.jpg", format="PNG")  # 3,600 px: over twice Pillow's limit
    result = check(tmp_path / "cat.1.jpg", max_pixels=5000)
    assert (result.ok, result.normalize) == (True, "not_jpeg")
    write_image(result, tmp_path / "out.jpg")
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored
    with pixel_limit(5000):
        assert Image.open(tmp_path / "out.jpg").size == (60, 60)


def test_pixel_limit_above_pillow_default_lets_large_images_through(tmp_path: Path) -> None:
    path = write_rgb_jpeg(tmp_path / "big.jpg", 200, 200)
    assert check(path, MIN_SIDE, 40_000).ok
    assert check(path, MIN_SIDE, 39_999).drop == "too_large"


def test_a_file_too_large_for_the_pixel_limit_is_not_read(tmp_path: Path, monkeypatch) -> None:
    path = write_rgb_jpeg(tmp_path / "cat.1.jpg")
    with path.open("ab") as handle:
        handle.write(bytes(2 << 20))  # junk after the image: the file outgrows what 5,000 pixels need
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"{self} was read"))
    result = check(path)
    assert result.drop == "too_large" and "bytes" in result.detail


def test_plain_rgb_jpeg_is_kept_and_copied_byte_for_byte(tmp_path: Path) -> None:
    source = write_rgb_jpeg(tmp_path / "cat.1.jpg")
    result = check(source)
    assert result == ImageCheck(source, width=48, height=40)
    write_image(result, tmp_path / "out.jpg")
    assert (tmp_path / "out.jpg").read_bytes() == source.read_bytes()


def test_min_side_boundary_is_inclusive(tmp_path: Path) -> None:
    path = write_rgb_jpeg(tmp_path / "edge.jpg", 32, 32)
    assert check(path, 32).ok
    assert check(path, 33).drop == "too_small"


@pytest.mark.parametrize("reason", NORMALIZE_REASONS)
def test_odd_images_are_kept_and_written_as_rgb_jpeg(tmp_path: Path, reason: str) -> None:
    write_odd_files(tmp_path, {reason: "odd.jpg"})
    result = check(tmp_path / "odd.jpg")
    assert result.ok
    assert result.normalize == reason
    write_image(result, tmp_path / "out.jpg")
    with Image.open(tmp_path / "out.jpg") as output:
        assert output.format == "JPEG"
        assert output.mode == "RGB"
        assert output.getexif().get(0x0112, 1) == 1
    # The written file is itself a plain image: checking it again asks for no normalization.
    assert check(tmp_path / "out.jpg").normalize is None


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    source = write_exif_rotated(tmp_path / "rotated.jpg", 60, 40)
    result = check(source)
    assert (result.width, result.height) == (40, 60)  # the upright size every reader sees
    write_image(result, tmp_path / "out.jpg")
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
    write_image(check(tmp_path / "clear.jpg"), tmp_path / "out.jpg")
    with Image.open(tmp_path / "out.jpg") as output:
        assert np.asarray(output).min() > 245


def test_sixteen_bit_images_are_scaled_to_eight_bits_not_clipped(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (40, 1))  # dark to bright, 16-bit grayscale
    Image.fromarray(ramp).save(tmp_path / "cat.1.jpg", format="PNG")
    assert Image.open(tmp_path / "cat.1.jpg").mode == "I;16"
    result = check(tmp_path / "cat.1.jpg")
    assert (result.ok, result.normalize) == (True, "not_jpeg")
    write_image(result, tmp_path / "out.jpg")
    written = np.asarray(Image.open(tmp_path / "out.jpg").convert("L"), dtype=np.float64)
    expected = ramp / 257.0
    assert np.abs(written - expected).mean() < 3
    assert (written >= 250).mean() < 0.05  # clipping made 99.6 % of a ramp white


def test_a_malformed_exif_chunk_is_dropped_as_corrupt_not_a_crash(tmp_path: Path) -> None:
    # The 190-byte file: a PNG behind a .jpg name whose eXIf chunk is not TIFF data.
    path = tmp_path / "cat.1.jpg"
    path.write_bytes(png_with_chunk(b"eXIf", b"garbage, not a TIFF header"))
    result = check(path)
    assert result.drop == "corrupt"
    assert "TIFF" in result.detail
    assert not any((tmp_path / "staging").iterdir())


def test_only_the_accepted_formats_are_opened(tmp_path: Path, monkeypatch) -> None:
    from PIL import EpsImagePlugin

    ghostscript_runs = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *args, **kwargs: ghostscript_runs.append(args))
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n%%EOF\n"
    (tmp_path / "cat.1.jpg").write_bytes(eps)
    noise(40, 40).save(tmp_path / "cat.2.jpg", format="TIFF")
    for name in ("cat.1.jpg", "cat.2.jpg"):
        result = check(tmp_path / name)
        assert result.drop == "not_an_image", (name, result)
    assert ghostscript_runs == []


def pillow_accepts_tensorflow_rejects(jpeg: bytes) -> bytes | None:
    """A copy of ``jpeg`` with one scan byte set to 0xFF that Pillow decodes and TensorFlow refuses, if any."""
    import tensorflow as tf

    scan = jpeg.index(b"\xff\xda") + 20  # inside the entropy-coded data
    for position in range(scan, min(scan + 400, len(jpeg) - 2)):
        candidate = bytearray(jpeg)
        candidate[position] = 0xFF
        candidate = bytes(candidate)
        try:
            Image.open(io.BytesIO(candidate), formats=["JPEG"]).load()
        except Exception:  # noqa: BLE001
            continue
        try:
            tf.io.decode_image(candidate, channels=3, expand_animations=False)
        except tf.errors.InvalidArgumentError:
            return candidate
    return None


def test_a_jpeg_pillow_accepts_but_tensorflow_rejects_is_dropped(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    noise(48, 48).save(buffer, format="JPEG", quality=90)
    damaged = pillow_accepts_tensorflow_rejects(buffer.getvalue())
    assert damaged is not None, "no single-byte corruption of the test JPEG fools Pillow but not TensorFlow"
    (tmp_path / "cat.1.jpg").write_bytes(damaged)
    result = check(tmp_path / "cat.1.jpg")
    assert result.drop == "corrupt"
    assert "TensorFlow cannot decode it" in result.detail


def test_prepare_image_returns_the_normalized_bytes_and_copies_nothing(tmp_path: Path) -> None:
    write_odd_files(tmp_path, {"cmyk": "cmyk.jpg"})
    write_rgb_jpeg(tmp_path / "plain.jpg")
    result, encoded = prepare_image(tmp_path / "cmyk.jpg", MIN_SIDE, MAX_PIXELS)
    assert result.normalize == "cmyk" and Image.open(io.BytesIO(encoded)).mode == "RGB"
    assert prepare_image(tmp_path / "plain.jpg", MIN_SIDE, MAX_PIXELS)[1] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmyk.jpg", "plain.jpg"]


def test_writing_a_dropped_image_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dropped"):
        write_image(ImageCheck(tmp_path / "x.jpg", drop="empty"), tmp_path / "out.jpg")


def test_check_images_keeps_the_input_order(tmp_path: Path) -> None:
    paths = [write_rgb_jpeg(tmp_path / f"{index}.jpg", 40 + index, 40, seed=index) for index in range(5)]
    write_bad_files(tmp_path, {"empty": "2.jpg"})
    (tmp_path / "staging").mkdir()
    checks = check_images(paths, MIN_SIDE, MAX_PIXELS, tmp_path / "staging")
    assert [result.path for result in checks] == paths
    assert [result.drop for result in checks] == [None, None, "empty", None, None]


def test_normalized_images_decode_in_tensorflow_upright(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    write_odd_files(tmp_path, {"cmyk": "cmyk.jpg", "exif_rotated": "rotated.jpg", "grayscale": "gray.jpg"})
    for name in ("cmyk.jpg", "rotated.jpg", "gray.jpg"):
        write_image(check(tmp_path / name), tmp_path / f"out-{name}")
        decoded = tf.io.decode_image(tf.io.read_file(str(tmp_path / f"out-{name}")), expand_animations=False)
        assert decoded.shape[-1] == 3
        if name == "rotated.jpg":
            assert tuple(decoded.shape[:2]) == (60, 40)  # height, width: upright without EXIF support


def repeated_scans(size: int, repeats: int) -> bytes:
    """A progressive JPEG of a flat picture whose last scan is repeated ``repeats`` more times: each
    scan is another pass of the decoder over the whole picture, in a few bytes."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (120, 80, 200)).save(buffer, "JPEG", progressive=True, quality=75)
    data = buffer.getvalue()
    last_scan, end = data.rfind(b"\xff\xda"), data.rfind(b"\xff\xd9")
    return data[:end] + data[last_scan:end] * repeats + data[end:]


def test_jpeg_scans_are_counted_from_the_markers() -> None:
    from catsdogs.data.images import MAX_JPEG_SCANS, jpeg_marker_counts, jpeg_scan_count

    for mode, progressive, scans in (("RGB", False, 1), ("RGB", True, 10), ("L", True, 6)):
        buffer = io.BytesIO()
        noise(64, 48, mode=mode).save(buffer, "JPEG", progressive=progressive)  # noise: FF00 stuffing in the scans
        assert jpeg_scan_count(buffer.getvalue()) == scans
        assert scans < jpeg_marker_counts(buffer.getvalue())[1] < 50  # APP0, DQT, SOF, DHT, SOS...
    restarts = io.BytesIO()
    noise(64, 48).save(restarts, "JPEG", restart_marker_blocks=1)  # RST0-7 after every block: not segments
    assert b"\xff\xd7" in restarts.getvalue()
    scans, segments = jpeg_marker_counts(write_jpeg_bytes(noise(64, 48)))
    assert jpeg_marker_counts(restarts.getvalue()) == (scans, segments + 1)  # + DRI, which sets the interval
    assert jpeg_scan_count(repeated_scans(64, 5000)) == MAX_JPEG_SCANS + 1  # stops counting past the bound
    assert jpeg_scan_count(b"\x89PNG\r\n") == 0


def write_jpeg_bytes(image: Image.Image) -> bytes:
    """``image`` as a plain JPEG (Pillow's defaults)."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["scans.jpg", "scans.png"])  # the bytes decide, not the name
def test_a_jpeg_of_thousands_of_scans_is_dropped_before_any_decode(tmp_path: Path, monkeypatch, name: str) -> None:
    # On the old code a 4000x4000 file of 5,000 repeated scans (249 KB) took 107 s in `catsdogs predict`.
    path = tmp_path / name
    path.write_bytes(repeated_scans(400, 3000))
    monkeypatch.setattr(Image, "open", lambda *args, **kwargs: pytest.fail("decoded"))
    result = check(path, max_pixels=1_000_000)
    assert (result.drop, result.ok) == ("too_large", False)
    assert "more than 100 JPEG scans" in result.detail


def test_a_jpeg_of_a_flood_of_marker_segments_is_dropped_before_any_decode(tmp_path: Path, monkeypatch) -> None:
    # Counting segments is Python work, libjpeg's skipping them C work: without a bound, a file of
    # millions of 4-byte comments between two scans would make the count the costly part.
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 80, 200)).save(buffer, "JPEG", progressive=True)
    data = buffer.getvalue()
    last_scan = data.rfind(b"\xff\xda")
    path = tmp_path / "comments.jpg"
    path.write_bytes(data[:last_scan] + b"\xff\xfe\x00\x02" * 20_000 + data[last_scan:])  # 80 KB of COM
    monkeypatch.setattr(Image, "open", lambda *args, **kwargs: pytest.fail("decoded"))
    result = check(path, max_pixels=1_000_000)
    assert result.drop == "too_large"
    assert result.detail == "more than 10000 JPEG marker segments (the most a JPEG may have here)"


def test_what_libjpeg_prints_stays_off_the_terminal(tmp_path: Path, capfd, caplog) -> None:
    path = tmp_path / "inconsistent.jpg"
    path.write_bytes(repeated_scans(64, 20))  # under the bound: decoded, and libjpeg complains on fd 2
    with caplog.at_level("DEBUG", logger="catsdogs.data.datasets"):
        check(path, max_pixels=1_000_000)
        os.write(2, b"fd 2 is back\n")
    error = capfd.readouterr().err
    assert "Inconsistent progression sequence" not in error
    assert "fd 2 is back" in error  # restored after the decode
    assert "Inconsistent progression sequence" in caplog.text  # kept in the debug log


def test_a_side_longer_than_a_jpeg_can_hold_is_dropped_with_that_reason(tmp_path: Path) -> None:
    path = tmp_path / "thin.png"
    Image.new("RGB", (1, 100_000), (10, 200, 30)).save(path)  # valid, and usable but for JPEG's limit
    result = check(path, min_side=1, max_pixels=1_000_000)
    assert result.drop == "too_large"
    assert result.detail == "1x100000: a side over 65500 px, the most a JPEG can hold"
    Image.new("RGB", (1, 65_500), (10, 200, 30)).save(path)  # the longest side a JPEG holds is kept
    kept = check(path, min_side=1, max_pixels=1_000_000)
    assert (kept.ok, kept.normalize, kept.width, kept.height) == (True, "not_jpeg", 1, 65_500)


def test_the_scans_of_a_jpeg_inside_an_mpo_are_bounded_too(tmp_path: Path, monkeypatch) -> None:
    # An MPO (a camera's multi-picture JPEG) is opened by Pillow and decoded by TensorFlow as its first
    # picture: the scans of that picture are counted, whatever the container and the name.
    buffer = io.BytesIO()
    frames = [Image.new("RGB", (400, 400), colour) for colour in ((120, 80, 200), (20, 200, 40))]
    frames[0].save(buffer, "MPO", save_all=True, append_images=frames[1:], progressive=True)
    data = buffer.getvalue()
    first_end = data.find(b"\xff\xd9")  # the first picture's EOI (flat pictures: no FFD9 in their data)
    last_scan = data.rfind(b"\xff\xda", 0, first_end)
    path = tmp_path / "camera.jpg"
    path.write_bytes(data[:first_end] + data[last_scan:first_end] * 3000 + data[first_end:])
    assert Image.open(path).format == "MPO"
    monkeypatch.setattr(Image, "open", lambda *args, **kwargs: pytest.fail("decoded"))
    result = check(path, max_pixels=1_000_000)
    assert (result.drop, result.ok) == ("too_large", False)
    assert "more than 100 JPEG scans" in result.detail
