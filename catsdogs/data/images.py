"""Decode-checking untrusted image files and normalising them to plain, upright RGB JPEGs.

One function, :func:`prepare_image`, takes a file from anywhere (a download, a
user's folder, ``catsdogs predict``) through every step that can fail, so a
hostile or broken file is a reason and a detail, never an exception:

- the size on disk, the pixel count, the longest side (a JPEG holds at most
  :data:`MAX_JPEG_SIDE`) and, for anything that starts as a JPEG does, whatever
  its name, the number of scans (:data:`MAX_JPEG_SCANS`: a progressive JPEG is
  decoded once per scan, so a small file repeating one scan thousands of times
  costs minutes) and of marker segments (:data:`MAX_JPEG_SEGMENTS`) are checked
  before anything is decoded, and every decode runs under the pixel limit
  (:func:`pixel_limit`), with what the C decoders print to file descriptor 2
  kept off the terminal, in the debug log (:func:`decoder_messages_logged`);
- Pillow opens only :data:`ACCEPTED_FORMATS` (a ``.jpg`` that is really EPS,
  TIFF or PSD is "not an image", and Pillow never calls out to Ghostscript);
- the whole picture is decoded; unusual but usable images (grayscale, CMYK,
  16-bit, another format behind a ``.jpg`` name, an EXIF orientation) are
  re-encoded as an upright 8-bit RGB JPEG (:data:`NORMALIZE_REASONS`); a file
  whose EXIF or other data breaks that re-encoding is dropped as ``corrupt``;
- the bytes every reader will get (the original JPEG, or its re-encoding) are
  decoded with the decoder training, evaluation and prediction use
  (:func:`catsdogs.data.datasets.decode_rgb`, TensorFlow's), and must give the expected
  shape.

Unusable files are dropped with a reason (:data:`DROP_REASONS`). Plain RGB JPEGs
are kept byte for byte (hard-linked where the file system allows).
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from catsdogs.core.io import link_or_copy
from catsdogs.data.datasets import decoder_messages_logged

# Why a file is dropped, in the order the checks run.
DROP_REASONS = ("empty", "not_an_image", "too_large", "too_small", "corrupt")
# Why a kept file is re-encoded; one reason per file, the first that applies.
NORMALIZE_REASONS = ("not_jpeg", "cmyk", "grayscale", "exif_rotated")
# The formats Pillow may open (its plugin names); anything else is "not_an_image".
# JPEG includes MPO, the multi-picture JPEG many cameras write (re-encoded: not_jpeg).
ACCEPTED_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP")
# A file may take at most this many bytes per pixel of the limit (plus headroom for
# metadata) before it is refused unread: reading a file costs memory too.
MAX_FILE_BYTES_PER_PIXEL = 4
FILE_HEADROOM_BYTES = 1 << 20
JPEG_QUALITY = 95
# A progressive JPEG is decoded once per scan, so the scan count multiplies the work the pixel
# limit bounds. libjpeg's progressive mode writes 10 scans (a colour image; 6 in grayscale) and
# the custom scripts of jpegtran/mozjpeg a few dozen at most; the hostile file repeats one scan
# thousands of times in a few hundred KB. As libjpeg-turbo's own tools offer (-maxscans).
MAX_JPEG_SCANS = 100
# Counting the scans reads every marker segment in Python (and Pillow reads those before the first
# scan in Python too), so their number is bounded as well: a file of millions of 4-byte comments,
# which libjpeg skips in C, would make the count the costly part. A photo has tens of segments
# (APPn, DQT, DHT, SOF, SOS); a big ICC profile or XMP packet adds a few hundred 64 KB chunks at most.
MAX_JPEG_SEGMENTS = 10_000
MAX_JPEG_SIDE = 65_500  # the longest side libjpeg writes (a kept image is written as a JPEG)
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # a marker: not stuffing (FF00), a restart or fill
EXIF_ORIENTATION = 0x0112
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # Pillow's modes for 16-bit grayscale


def jpeg_marker_counts(
    data: bytes, max_scans: int = MAX_JPEG_SCANS, max_segments: int = MAX_JPEG_SEGMENTS,
) -> tuple[int, int]:
    """(scans, marker segments) in JPEG ``data``: SOS segments, and every marker after SOI. Both are
    exact up to their bound; the reading stops once either count passes it (bound + 1), so the work
    is bounded too.

    Only marker segments are read: each is skipped by its length, and entropy-coded data up to the
    next marker (stuffed ``FF00`` bytes, fill ``FF`` bytes and the restart markers RST0-7 are part of
    it). The first picture only (EOI ends it), as Pillow and TensorFlow decode it. (0, 0) for data
    that does not start as a JPEG (``FFD8``).
    """
    if not data.startswith(b"\xff\xd8"):
        return 0, 0
    scans, segments, position = 0, 0, 2
    while scans <= max_scans and segments <= max_segments:
        match = _JPEG_MARKER.search(data, position)
        if match is None:
            break
        marker = match.group()[1]
        position = match.end()
        if marker == 0xD9:  # EOI
            break
        segments += 1
        if marker == 0x01:  # TEM: no length
            continue
        if position + 2 > len(data):
            break
        length = int.from_bytes(data[position:position + 2], "big")
        if marker == 0xDA:  # SOS: its header, then entropy-coded data up to the next marker
            scans += 1
        position += max(length, 2)
    return scans, segments


def jpeg_scan_count(data: bytes, stop_after: int = MAX_JPEG_SCANS) -> int:
    """The number of scans in JPEG ``data`` (:func:`jpeg_marker_counts`), counting no further than
    ``stop_after`` + 1. 0 for data that is not a JPEG."""
    return jpeg_marker_counts(data, max_scans=stop_after)[0]


def jpeg_work_problem(data: bytes) -> str | None:
    """Why decoding ``data`` would cost too much work (the detail of a ``too_large`` drop), or None.

    Reads the marker segments only (:func:`jpeg_marker_counts`), never the pictures; None for anything
    that is not a JPEG.
    """
    scans, segments = jpeg_marker_counts(data)
    if scans > MAX_JPEG_SCANS:
        return (
            f"more than {MAX_JPEG_SCANS} JPEG scans (the most a JPEG may have here: "
            "each one is another pass of the decoder over the whole picture)"
        )
    if segments > MAX_JPEG_SEGMENTS:
        return f"more than {MAX_JPEG_SEGMENTS} JPEG marker segments (the most a JPEG may have here)"
    return None


@dataclass(frozen=True)
class ImageCheck:
    """The verdict on one file: keep (copy or normalize) or drop, with the reason."""

    path: Path
    drop: str | None = None  # one of DROP_REASONS, or None: the image is usable
    normalize: str | None = None  # one of NORMALIZE_REASONS, or None: copy as is
    detail: str = ""  # the decoder's message for a dropped file
    width: int = 0  # the upright picture's size, as every reader sees it
    height: int = 0
    normalized: Path | None = None  # where the re-encoded copy waits to be written (check_images)

    @property
    def ok(self) -> bool:
        """True when the image is usable."""
        return self.drop is None


def max_file_bytes(max_pixels: int) -> int:
    """The largest file (in bytes) read for a pixel limit of ``max_pixels``."""
    return max_pixels * MAX_FILE_BYTES_PER_PIXEL + FILE_HEADROOM_BYTES


def _normalize_reason(image: Image.Image) -> str | None:
    """Why an opened image must be re-encoded, or None for a plain upright RGB JPEG."""
    if image.format != "JPEG":
        return "not_jpeg"  # PNG, GIF, BMP, WebP, MPO... behind a .jpg name, whatever their mode
    # Pillow reads every JPEG as L, RGB or CMYK.
    if image.mode == "CMYK":
        return "cmyk"
    if image.mode == "L":
        return "grayscale"
    if image.getexif().get(EXIF_ORIENTATION, 1) != 1:
        return "exif_rotated"
    return None


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: 16-bit grayscale scaled (not clipped) to 8 bits, transparency flattened on white."""
    if image.mode in SIXTEEN_BIT_MODES:
        # convert("RGB") would clip every value above 255 to white.
        values = np.asarray(image)
        if values.dtype.kind == "i":  # mode I: 32-bit signed, holding 16-bit values
            values = np.clip(values, 0, 65535)
        image = Image.fromarray(((values.astype(np.uint32) + 128) // 257).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        rgb = Image.new("RGB", rgba.size, (255, 255, 255))
        rgb.paste(rgba, mask=rgba.getchannel("A"))
        return rgb
    return image.convert("RGB")


def _encode_upright_jpeg(image: Image.Image) -> tuple[bytes, tuple[int, int]]:
    """The loaded image as an upright RGB JPEG (EXIF applied and dropped) and its (width, height)."""
    rgb = _to_rgb(ImageOps.exif_transpose(image))
    buffer = io.BytesIO()
    # No exif= and no icc_profile=: the output carries no orientation to re-apply.
    rgb.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue(), rgb.size


def tensorflow_message(error: Exception) -> str:
    """TensorFlow's error text without its op and device decorations (one short line)."""
    text = str(getattr(error, "message", "") or error).strip()
    message = text.splitlines()[0] if text else ""
    message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", message)
    message = re.sub(r"\s*\[Op:[^\]]*\].*$", "", message)
    return message.strip()[:200] or type(error).__name__


def _check_tensorflow_decodes(data: bytes, size: tuple[int, int]) -> None:
    """``ValueError`` unless the training decoder reads ``data`` as an RGB image of ``size`` (width, height)."""
    from catsdogs.data.datasets import decode_rgb

    try:
        shape = tuple(decode_rgb(data).shape)
    except Exception as error:  # noqa: BLE001 - tf.errors.* and whatever else the op raises
        raise ValueError(f"TensorFlow cannot decode it: {tensorflow_message(error)}") from None
    width, height = size
    if shape != (height, width, 3):
        raise ValueError(f"TensorFlow decodes it as {shape}, Pillow as {width}x{height}")


def prepare_image(path: str | Path, min_side: int, max_pixels: int) -> tuple[ImageCheck, bytes | None]:
    """Check one file completely; return the verdict and, for a file that needs it, its normalized JPEG bytes.

    Nothing raises for a bad file: it comes back dropped, with a reason from
    :data:`DROP_REASONS` and a detail. A kept file is either copied as is
    (bytes ``None``) or replaced by the returned bytes, which TensorFlow has
    already decoded to the recorded width and height. ``OSError`` (the file
    cannot be read at all) is the only exception.
    """
    path = Path(path)
    size_on_disk = path.stat().st_size
    if size_on_disk == 0:
        return ImageCheck(path, drop="empty", detail="zero-byte file"), None
    if size_on_disk > max_file_bytes(max_pixels):
        detail = f"{size_on_disk} bytes > {max_file_bytes(max_pixels)} (the file limit for {max_pixels} pixels)"
        return ImageCheck(path, drop="too_large", detail=detail), None
    data = path.read_bytes()
    # Whatever the name says: Pillow and TensorFlow read anything that starts as a JPEG as one.
    problem = jpeg_work_problem(data)
    if problem is not None:
        return ImageCheck(path, drop="too_large", detail=problem), None
    try:
        # One capture around every decode: Pillow's, its re-encoding and TensorFlow's (and the
        # first call's import of TensorFlow, which prints to file descriptor 2 too).
        with decoder_messages_logged():
            with pixel_limit(max_pixels), Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
                width, height = image.size
                size = {"width": width, "height": height}
                if width * height > max_pixels:
                    detail = f"{width}x{height} > {max_pixels} pixels"
                    return ImageCheck(path, drop="too_large", detail=detail, **size), None
                # Every kept image is (re-)encoded as a JPEG, and libjpeg writes no side longer than
                # this: such a picture cannot be kept, and no decode is spent on it.
                if max(width, height) > MAX_JPEG_SIDE:
                    detail = f"{width}x{height}: a side over {MAX_JPEG_SIDE} px, the most a JPEG can hold"
                    return ImageCheck(path, drop="too_large", detail=detail, **size), None
                if min(width, height) < min_side:
                    detail = f"{width}x{height} < {min_side} px"
                    return ImageCheck(path, drop="too_small", detail=detail, **size), None
                image.load()  # the full decode: truncated and corrupt data fail here
                reason = _normalize_reason(image)
                encoded, (width, height) = _encode_upright_jpeg(image) if reason else (None, (width, height))
            _check_tensorflow_decodes(data if encoded is None else encoded, (width, height))
    except UnidentifiedImageError:
        detail = f"cannot identify image file (accepted formats: {', '.join(ACCEPTED_FORMATS)})"
        return ImageCheck(path, drop="not_an_image", detail=detail), None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        return ImageCheck(path, drop="too_large", detail=str(error)), None
    except Exception as error:  # noqa: BLE001 - any decoder or re-encoding failure means the file is unusable
        return ImageCheck(path, drop="corrupt", detail=f"{type(error).__name__}: {error}"[:300]), None
    return ImageCheck(path, normalize=reason, width=width, height=height), encoded


@contextlib.contextmanager
def pixel_limit(max_pixels: int) -> Iterator[None]:
    """Set Pillow's bomb limit to ``max_pixels`` and make its warning an error, restoring both after.

    Both are process-wide settings (one thread decodes at a time here).
    """
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def check_image(path: str | Path, min_side: int, max_pixels: int, staging: str | Path) -> ImageCheck:
    """:func:`prepare_image`, with a normalized image's bytes saved under ``staging`` for :func:`write_image`."""
    check, encoded = prepare_image(path, min_side, max_pixels)
    if encoded is None:
        return check
    normalized = Path(staging) / check.path.name
    normalized.write_bytes(encoded)
    return replace(check, normalized=normalized)


def check_images(
    paths: Sequence[Path], min_side: int, max_pixels: int, staging: str | Path,
    progress: Callable[[int], None] | None = None,
) -> list[ImageCheck]:
    """Check many files, in input order (one thread); ``progress(1)`` after each file, when given."""
    checks = []
    for path in paths:
        checks.append(check_image(path, min_side, max_pixels, staging))
        if progress is not None:
            progress(1)
    return checks


def write_image(check: ImageCheck, target: str | Path) -> None:
    """Write a usable image to ``target``: a byte-for-byte copy, or its normalized re-encoding."""
    if not check.ok:
        raise ValueError(f"{check.path} was dropped ({check.drop}); it cannot be written")
    if check.normalize is not None and check.normalized is None:
        raise ValueError(f"{check.path} needs normalizing ({check.normalize}) but was checked without a staging folder")
    # The same bytes as the checked file or its staged re-encoding: a hard link where the file system allows.
    link_or_copy(check.normalized or check.path, target)
