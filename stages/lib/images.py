"""Decode-checking raw images and writing them as plain, upright RGB JPEGs.

Every file is fully decoded with Pillow before it is used. Unusable files are
dropped with a reason (:data:`DROP_REASONS`); usable but odd ones (grayscale,
CMYK, another format behind a ``.jpg`` name, an EXIF orientation) are
re-encoded so that readers which ignore EXIF and cannot read CMYK, such as
``tf.io.decode_image``, see an upright RGB image (:data:`NORMALIZE_REASONS`).
Ordinary RGB JPEGs are kept byte for byte (hard-linked where the file system allows).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from stages.lib.io import link_or_copy

# Why a file is dropped, in the order the checks run.
DROP_REASONS = ("empty", "not_an_image", "too_large", "too_small", "corrupt")
# Why a kept file is re-encoded; one reason per file, the first that applies.
NORMALIZE_REASONS = ("not_jpeg", "cmyk", "grayscale", "exif_rotated")
JPEG_QUALITY = 95
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageCheck:
    """The verdict on one file: keep (copy or normalize) or drop, with the reason."""

    path: Path
    drop: str | None = None  # one of DROP_REASONS, or None: the image is usable
    normalize: str | None = None  # one of NORMALIZE_REASONS, or None: copy as is
    detail: str = ""  # the decoder's message for a dropped file
    width: int = 0
    height: int = 0

    @property
    def ok(self) -> bool:
        """True when the image is usable."""
        return self.drop is None


def _normalize_reason(image: Image.Image) -> str | None:
    """Why an opened image must be re-encoded, or None for a plain upright RGB JPEG."""
    if image.format != "JPEG":
        return "not_jpeg"  # PNG, GIF, BMP... behind a .jpg name, whatever their mode
    # Pillow reads every JPEG as L, RGB or CMYK.
    if image.mode == "CMYK":
        return "cmyk"
    if image.mode == "L":
        return "grayscale"
    if image.getexif().get(EXIF_ORIENTATION, 1) != 1:
        return "exif_rotated"
    return None


def check_image(path: str | Path, min_side: int, max_pixels: int) -> ImageCheck:
    """Open and fully decode one file; say whether it is usable and whether it needs re-encoding.

    Call it inside :func:`pixel_limit` so that Pillow's own decompression-bomb
    guard matches ``max_pixels`` and raises instead of warning.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        return ImageCheck(path, drop="empty", detail="zero-byte file")
    try:
        with Image.open(path) as image:
            width, height = image.size
            size = {"width": width, "height": height}
            if width * height > max_pixels:
                return ImageCheck(path, drop="too_large", detail=f"{width}x{height} > {max_pixels} pixels", **size)
            if min(width, height) < min_side:
                return ImageCheck(path, drop="too_small", detail=f"{width}x{height} < {min_side} px", **size)
            image.load()  # the full decode: truncated and corrupt data fail here
            reason = _normalize_reason(image)
    except UnidentifiedImageError as error:
        return ImageCheck(path, drop="not_an_image", detail=str(error))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        return ImageCheck(path, drop="too_large", detail=str(error))
    except Exception as error:  # noqa: BLE001 - any decoder failure means the file is unreadable
        return ImageCheck(path, drop="corrupt", detail=f"{type(error).__name__}: {error}")
    return ImageCheck(path, normalize=reason, width=width, height=height)


@contextlib.contextmanager
def pixel_limit(max_pixels: int) -> Iterator[None]:
    """Set Pillow's bomb limit to ``max_pixels`` and make its warning an error, restoring both after.

    Both are process-wide settings, so this wraps a whole batch of checks.
    """
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def check_images(paths: Sequence[Path], min_side: int, max_pixels: int) -> list[ImageCheck]:
    """Check many files, in input order (one thread: decoding is not what the split waits on)."""
    with pixel_limit(max_pixels):
        return [check_image(path, min_side, max_pixels) for path in paths]


def normalize_image(source: str | Path, target: str | Path) -> None:
    """Re-encode any readable image as an upright RGB JPEG (EXIF applied and dropped, alpha on white)."""
    with Image.open(source) as image:
        image.load()
        upright = ImageOps.exif_transpose(image)
        if upright.mode in ("RGBA", "LA", "PA") or (upright.mode == "P" and "transparency" in upright.info):
            rgba = upright.convert("RGBA")
            rgb = Image.new("RGB", rgba.size, (255, 255, 255))
            rgb.paste(rgba, mask=rgba.getchannel("A"))
        else:
            rgb = upright.convert("RGB")
        # No exif= and no icc_profile=: the output carries no orientation to re-apply.
        rgb.save(target, format="JPEG", quality=JPEG_QUALITY)


def write_image(check: ImageCheck, target: str | Path) -> None:
    """Write a usable image to ``target``: a byte-for-byte copy, or a normalized re-encoding."""
    if not check.ok:
        raise ValueError(f"{check.path} was dropped ({check.drop}); it cannot be written")
    if check.normalize is None:
        link_or_copy(check.path, target)  # the same bytes: a hard link where the file system allows
    else:
        normalize_image(check.path, target)
