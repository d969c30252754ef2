"""Fuzzing the split's check-and-normalise path with mutated real JPEGs and PNGs (Hypothesis).

The integration tier's share (stages in subprocesses, dvc, training for seconds); the fast
tests, and what the module covers, are in tests/unit/test_fuzz_images.py.
"""

from __future__ import annotations

import faulthandler
import os
import resource
import struct
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from catsdogs.data.images import DROP_REASONS, NORMALIZE_REASONS, check_image, write_image
from tests.unit.test_fuzz_images import MAX_PIXELS, MIN_SIDE, seed_images

EXAMPLES = int(os.environ.get("CATSDOGS_FUZZ_EXAMPLES", "300"))

LONG_RUN = "CATSDOGS_FUZZ_EXAMPLES" in os.environ

PEAK_RSS_GROWTH_BYTES = 400 * 2**20  # peak memory may grow this much over the whole run, no more

EXAMPLE_TIMEOUT_S = 60  # a hung decode kills the test process with a traceback instead of hanging CI

SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG")

SIGNATURE_BYTES = 8  # PNG's signature (JPEG's is 2): damage past it reaches the decoders, not just the sniffing

fractions = st.floats(min_value=0, max_value=1, exclude_max=True, allow_nan=False)

garbage = st.binary(min_size=1, max_size=64)

one_mutation = st.one_of(
    st.tuples(st.just("flip"), fractions, st.integers(0, 7)),
    st.tuples(st.just("overwrite"), fractions, garbage),
    st.tuples(st.just("insert"), fractions, garbage),
    st.tuples(st.just("truncate"), fractions),
    st.tuples(st.just("scan"), fractions, st.one_of(st.just(0xFF), st.integers(0, 255))),
    st.tuples(st.just("structure"), fractions, garbage, st.booleans()),
    st.tuples(st.just("length"), fractions, st.sampled_from([0, 1, 2, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF])),
)



def png_chunks(data: bytes) -> list[tuple[int, int]]:
    """(start, data length) of each PNG chunk whose header is intact."""
    chunks, offset = [], 8
    while offset + 8 <= len(data):
        length = struct.unpack(">I", data[offset:offset + 4])[0]
        if offset + 12 + length > len(data):
            break
        chunks.append((offset, length))
        offset += 12 + length
    return chunks


def jpeg_segments(data: bytes) -> list[tuple[int, int]]:
    """(start of the payload, payload length) of each JPEG marker segment before the scan data."""
    segments, offset = [], 2
    while offset + 4 <= len(data) and data[offset] == 0xFF:
        marker = data[offset + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            offset += 2
            continue
        length = struct.unpack(">H", data[offset + 2:offset + 4])[0]
        segments.append((offset + 4, max(length - 2, 0)))
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        offset += 2 + length
    return segments


def _position(data: bytearray, fraction: float) -> int:
    start = min(SIGNATURE_BYTES, len(data) - 1)
    return min(start + int(fraction * (len(data) - start)), len(data) - 1)


def mutate(data: bytes, mutations: list[tuple]) -> bytes:
    """Apply the mutations in order; each addresses the data by fractions, so any size works."""
    out = bytearray(data)
    for kind, *args in mutations:
        if not out:
            break
        if kind == "flip":
            fraction, bit = args
            out[_position(out, fraction)] ^= 1 << bit
        elif kind == "overwrite":
            fraction, replacement = args
            start = _position(out, fraction)
            out[start:start + len(replacement)] = replacement
        elif kind == "insert":
            fraction, extra = args
            start = _position(out, fraction)
            out[start:start] = extra
        elif kind == "truncate":
            (fraction,) = args
            del out[max(int(fraction * len(out)), 1):]
        elif kind == "structure":  # a PNG chunk or JPEG segment: garbage inside, CRC fixed or not
            choice, replacement, fix_crc = args
            is_png = bytes(out[:8]) == b"\x89PNG\r\n\x1a\n"
            parts = png_chunks(bytes(out)) if is_png else jpeg_segments(bytes(out))
            if not parts:
                continue
            start, length = parts[int(choice * len(parts)) % len(parts)]
            payload = start + 8 if is_png else start
            end = payload + min(length, len(replacement))
            out[payload:end] = replacement[: end - payload]
            if is_png and fix_crc:
                crc_at = start + 8 + length
                out[crc_at:crc_at + 4] = struct.pack(">I", zlib.crc32(bytes(out[start + 4:crc_at])))
        elif kind == "scan":  # a byte of JPEG entropy-coded data (0xFF there starts a marker)
            fraction, value = args
            segments = jpeg_segments(bytes(out)) if bytes(out[:2]) == b"\xff\xd8" else []
            if segments:
                start, length = segments[-1]
                scan = start + length
                if scan < len(out) - 2:
                    out[scan + int(fraction * (len(out) - 2 - scan))] = value
        elif kind == "length":  # a PNG chunk or JPEG segment claiming another length
            choice, value = args
            is_png = bytes(out[:8]) == b"\x89PNG\r\n\x1a\n"
            parts = png_chunks(bytes(out)) if is_png else jpeg_segments(bytes(out))
            if parts:
                start, _ = parts[int(choice * len(parts)) % len(parts)]
                if is_png:
                    out[start:start + 4] = struct.pack(">I", value)
                else:
                    out[start - 2:start] = struct.pack(">H", value & 0xFFFF)
    return bytes(out)


@st.composite
def damaged_images(draw) -> tuple[str, bytes]:
    """A file name (any of the pipeline's extensions) and a damaged real image."""
    source = draw(st.sampled_from(sorted(seed_images())))
    mutations = draw(st.lists(one_mutation, min_size=0, max_size=4))
    name = "cat.1" + draw(st.sampled_from(SUFFIXES))
    return name, mutate(seed_images()[source], mutations)


@pytest.fixture(scope="module")
def peak_rss_before() -> int:
    """Peak memory (bytes) once TensorFlow and the decoders are warmed up on a valid image."""
    import tensorflow as tf

    tf.io.decode_image(seed_images()["png"], channels=3)  # TensorFlow's own start-up is not what is measured
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cat.1.jpg"
        path.write_bytes(seed_images()["jpeg"])
        check = check_image(path, MIN_SIDE, MAX_PIXELS, folder)
        assert check.ok
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@settings(
    max_examples=EXAMPLES,
    deadline=None,  # a slow CI machine is not a failure; a hang is caught by the watchdog below
    derandomize=not LONG_RUN,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(damaged_images())
def test_damaged_images_are_kept_and_decodable_or_dropped_with_a_reason(peak_rss_before, sample) -> None:
    import tensorflow as tf

    name, content = sample
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        path = folder / name
        path.write_bytes(content)
        staging = folder / "staging"
        staging.mkdir()
        faulthandler.dump_traceback_later(EXAMPLE_TIMEOUT_S, exit=True)
        try:
            check = check_image(path, MIN_SIDE, MAX_PIXELS, staging)  # must not raise, whatever the bytes
            event(f"kept, {check.normalize or 'copied'}" if check.ok else f"dropped, {check.drop}")
            if check.ok:
                assert check.normalize in (None, *NORMALIZE_REASONS)
                write_image(check, folder / "out.jpg")
                decoded = tf.io.decode_image(tf.io.read_file(str(folder / "out.jpg")), channels=3, expand_animations=False)
                assert tuple(decoded.shape) == (check.height, check.width, 3)
                assert check.width * check.height <= MAX_PIXELS and min(check.width, check.height) >= MIN_SIDE
            else:
                assert check.drop in DROP_REASONS and check.detail
        finally:
            faulthandler.cancel_dump_traceback_later()
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak_rss_before
    assert growth < PEAK_RSS_GROWTH_BYTES, f"peak memory grew by {growth / 2**20:.0f} MiB"
