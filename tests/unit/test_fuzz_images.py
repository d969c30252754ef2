"""Fuzzing the split's check-and-normalise path with mutated real JPEGs and PNGs (Hypothesis).

Every input is a real image the test writes (JPEG: plain, progressive, EXIF-rotated,
grayscale, CMYK; PNG: RGB, RGBA, palette with transparency, 16-bit, with an eXIf
chunk), then damaged: bit flips, overwritten and inserted bytes, truncation, a
corrupted PNG chunk or JPEG segment (with or without a valid CRC), corrupted
EXIF, damaged JPEG scan data, and saved under any of the pipeline's extensions. It goes through what
split runs, ``check_image`` then ``write_image``, and must come out either kept
(and then TensorFlow decodes the written file to the recorded shape) or dropped
with a documented reason; nothing may raise, hang or grow the process's peak
memory past a bound.

CI runs ``CATSDOGS_FUZZ_EXAMPLES`` cases (default 300, derandomized so the suite
is repeatable); ``make fuzz`` runs many more, with fresh randomness.
"""

from __future__ import annotations

import io
import struct
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from catsdogs.data.images import check_image

MIN_SIDE = 8
MAX_PIXELS = 1_000_000  # bounds what any one decode may allocate


def _exif(orientation: int) -> bytes:
    """EXIF with an orientation and a few other tags (so there is structure to corrupt)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "FuzzCam"  # Make
    exif[0x0131] = "catsdogs tests"  # Software
    return exif.tobytes()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@lru_cache(maxsize=1)
def seed_images() -> dict[str, bytes]:
    """The real images the mutations start from, by name."""
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
    pixels[:, :16] = (200, 40, 40)  # some flat area too, so not every byte is noise
    rgb = Image.fromarray(pixels)
    images: dict[str, bytes] = {}

    def save(name: str, image: Image.Image, fmt: str, **options) -> None:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **options)
        images[name] = buffer.getvalue()

    save("jpeg", rgb, "JPEG", quality=85)
    save("jpeg_progressive", rgb, "JPEG", quality=85, progressive=True)
    save("jpeg_exif_rotated", rgb, "JPEG", quality=85, exif=_exif(6))
    save("jpeg_gray", rgb.convert("L"), "JPEG", quality=85)
    save("jpeg_cmyk", rgb.convert("CMYK"), "JPEG", quality=85)
    save("png", rgb, "PNG")
    save("png_rgba", rgb.convert("RGBA"), "PNG")
    save("png_palette", rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG", transparency=0)
    save("png_16bit", Image.fromarray((pixels[..., 0].astype(np.uint16) * 257)), "PNG")
    png = images["png"]
    images["png_exif"] = png[:33] + _png_chunk(b"eXIf", _exif(8)) + png[33:]  # after IHDR
    return images


def test_the_seed_images_are_kept_unmutated(tmp_path: Path) -> None:
    """Without damage every seed is usable: the fuzz cases start from real, valid images."""
    (tmp_path / "staging").mkdir()
    for name, data in seed_images().items():
        path = tmp_path / f"cat.{name}.jpg"
        path.write_bytes(data)
        check = check_image(path, MIN_SIDE, MAX_PIXELS, tmp_path / "staging")
        assert check.ok, (name, check)
