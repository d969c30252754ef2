"""Robust HTTP downloads with ``requests``: streamed, resumed, retried, verified, moved in whole.

The body streams to a temporary file beside the target with a tqdm progress bar.
After an interruption (connection dropped, timeout, short body) the next try asks
for the rest with a ``Range`` request: a ``206`` answer is appended, a ``200``
answer (the server ignored the range) starts over. Connection errors, timeouts,
5xx and 429 answers are retried with exponential backoff, ``retries`` times at
most. The file is moved onto the target only once its size matches
``Content-Length`` and ``verify`` (e.g. a zip check) accepts it; a file that fails
verification is deleted. Resuming happens within one run: a killed run starts over.

Bounded: a body is never written past ``max_bytes`` (an announced length over it
is refused before the body is read; a body without Content-Length, or longer than
announced, is cut off there and refused).

Secrets: signed URLs carry tokens in their query string, so URLs appear in
messages and logs without query, fragment or user info (:func:`display_url`),
errors of the HTTP library (whose text quotes the URL) are reduced to their class
name, and the debug logs of urllib3 and requests pass through a filter that
removes query strings and Authorization values (:func:`redact`).
"""

from __future__ import annotations

import io
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
from tqdm import tqdm

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
BACKOFF_S = 1.0  # first wait between tries; doubles each time
MAX_BACKOFF_S = 60.0
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
# A query string after a URL or path (?a=b...), and the value of a credential header or key=value.
_QUERY = re.compile(r"(?<=[\w/.%-])\?[^\s\"'<>]+")
_USER_INFO = re.compile(r"(?<=://)[^/\s@]+@")
_CREDENTIAL = re.compile(r"(?i)\b((?:proxy-)?authorization|x-amz-security-token)(['\"]?\s*[:=]\s*['\"]?)[^\n'\"]+")
# The loggers of the HTTP stack that write request lines (with their query strings) at debug level.
HTTP_LIBRARY_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.poolmanager", "requests")


class TransientError(Exception):
    """A failure worth retrying: 5xx, 429, a dropped connection, a short body."""

    def __init__(self, message: str, wait_s: float | None = None):
        super().__init__(message)
        self.wait_s = wait_s


def display_url(url: str) -> str:
    """The URL without user info, query or fragment: safe to log."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:  # an invalid port: show no host rather than fail while reporting
        return "(an invalid URL)"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact(text: str) -> str:
    """``text`` with URL query strings and user info, and Authorization-style header values, as ``[redacted]``."""
    text = _USER_INFO.sub("[redacted]@", _QUERY.sub("?[redacted]", text))
    return _CREDENTIAL.sub(r"\1\2[redacted]", text)


class RedactingFilter(logging.Filter):
    """A logging filter that passes every record with :func:`redact` applied to its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message in place; never drop it."""
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


_REDACTING_FILTER = RedactingFilter()


def redact_library_logs(*more_loggers: str) -> None:
    """Attach the redacting filter to the HTTP libraries' loggers and ``more_loggers`` (idempotent)."""
    for name in (*HTTP_LIBRARY_LOGGERS, *more_loggers):
        logging.getLogger(name).addFilter(_REDACTING_FILTER)


class RedactingStream(io.TextIOBase):
    """A text stream that writes :func:`redact`-ed text to another (for a library's prints and progress bars)."""

    def __init__(self, target):
        self._target = target

    def write(self, text: str) -> int:
        """Write ``text`` with its secrets replaced; report it as written whole."""
        self._target.write(redact(text))
        return len(text)

    def flush(self) -> None:
        """Flush the target stream."""
        self._target.flush()

    def isatty(self) -> bool:
        """Whether the target is a terminal (progress bars ask)."""
        return self._target.isatty()

    @property
    def encoding(self) -> str:
        """The target's encoding (progress bars ask)."""
        return getattr(self._target, "encoding", None) or "utf-8"


def check_url(url: str) -> None:
    """``ValueError`` unless ``url`` is an http(s) URL with a host."""
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError:  # an invalid port or IPv6 literal
        raise ValueError(f"not a valid URL: {display_url(url) if '://' in url else '(not shown)'}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"not an http(s) URL: {display_url(url) or '(not shown: no scheme or host)'}")


def _retry_after(response: requests.Response) -> float | None:
    """The server's Retry-After in seconds, when given as a number."""
    value = response.headers.get("Retry-After", "").strip()
    return min(float(value), 300.0) if value.isdigit() else None


def _too_large(url: str, what: str, max_bytes: int) -> ValueError:
    """The error for a body past the download limit."""
    return ValueError(
        f"download of {display_url(url)} refused: {what}, over the limit of {max_bytes} bytes "
        "(download.limits.max_total_bytes)"
    )


def _fetch_once(
    session: requests.Session, url: str, part: Path, timeout_s: float, progress: bool, max_bytes: int
) -> None:
    """One request: append to ``part`` (Range) or rewrite it; raise TransientError if incomplete."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}  # the byte count must match Content-Length
    if have:
        headers["Range"] = f"bytes={have}-"
    with session.get(url, headers=headers, stream=True, timeout=(timeout_s, timeout_s)) as response:
        status = response.status_code
        if status == 429 or status >= 500:
            raise TransientError(f"HTTP {status} {response.reason}", _retry_after(response))
        if status == 416 and have:
            # The range starts at or past the end: the file is complete, or the part is stale.
            match = re.search(r"/(\d+)", response.headers.get("Content-Range", ""))
            if match and int(match.group(1)) == have:
                return
            part.unlink()
            raise TransientError("HTTP 416 for the resumed range; starting over")
        if status >= 400:
            raise ValueError(f"download of {display_url(url)} failed: HTTP {status} {response.reason}")
        if status == 206 and have:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != have:
                part.unlink()
                raise TransientError("the server resumed at the wrong offset; starting over")
            total = None if match.group(3) == "*" else int(match.group(3))
            mode = "ab"
            logger.info("resuming %s at %d bytes", display_url(url), have)
        else:
            have = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
        if total is not None and total > max_bytes:
            raise _too_large(url, f"the server announces {total} bytes", max_bytes)
        bar = tqdm(
            total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name.removeprefix(".").removesuffix(".part"), mininterval=1.0, disable=not progress,
        )
        try:
            with open(part, mode) as handle:
                # read1 hands over whatever arrived, so bytes before a dropped connection are kept;
                # raw (undecoded) bytes are what Content-Length and Range count.
                size = have
                while chunk := response.raw.read1(CHUNK_BYTES, decode_content=False):
                    size += len(chunk)
                    if size > max_bytes:  # the part file is deleted on the way out
                        raise _too_large(url, f"the body runs past {max_bytes} bytes", max_bytes)
                    handle.write(chunk)
                    bar.update(len(chunk))
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as error:
            raise TransientError(f"connection broken: {error.__class__.__name__}") from None
        finally:
            bar.close()
    size = part.stat().st_size
    if total is not None and size < total:
        raise TransientError(f"got {size} of {total} bytes")
    if total is not None and size > total:
        part.unlink()
        raise TransientError(f"got {size} bytes, more than the announced {total}; starting over")


def download_file(
    url: str,
    target: str | Path,
    *,
    retries: int,
    timeout_s: float,
    max_bytes: int,
    verify: Callable[[Path], None] | None = None,
    backoff_s: float | None = None,
    progress: bool = True,
    session: requests.Session | None = None,
) -> Path:
    """Download ``url`` to ``target`` (resumed, retried, verified, at most ``max_bytes``) and return ``target``."""
    check_url(url)
    redact_library_logs()
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.part")
    part.unlink(missing_ok=True)
    backoff_s = BACKOFF_S if backoff_s is None else backoff_s
    own_session = session is None
    session = session or requests.Session()
    logger.info("downloading %s", display_url(url))
    try:
        failures = 0
        while True:
            try:
                _fetch_once(session, url, part, timeout_s, progress, max_bytes)
                break
            except (requests.ConnectionError, requests.Timeout, TransientError) as error:
                failures += 1
                reason = str(error) if isinstance(error, TransientError) else error.__class__.__name__
                if failures > retries:
                    raise ValueError(
                        f"download of {display_url(url)} failed after {retries} retries: {reason}"
                    ) from None
                wait = getattr(error, "wait_s", None)
                wait = min(backoff_s * 2 ** (failures - 1), MAX_BACKOFF_S) if wait is None else wait
                logger.warning(
                    "download interrupted (%s); retry %d/%d in %.1fs", reason, failures, retries, wait
                )
                time.sleep(wait)
            except requests.RequestException as error:
                # Invalid URLs, too many redirects...: the library's text quotes the URL, query included.
                raise ValueError(f"download of {display_url(url)} failed: {error.__class__.__name__}") from None
        if verify is not None:
            try:
                verify(part)
            except ValueError as error:
                raise ValueError(
                    f"downloaded file from {display_url(url)} failed verification: {error}"
                ) from None
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
        if own_session:
            session.close()
    logger.info("downloaded %s (%d bytes)", target.name, target.stat().st_size)
    return target
