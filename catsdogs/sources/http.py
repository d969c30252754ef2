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
announced, is cut off there and refused). ``timeout_s`` bounds each connect and
read; ``deadline_s`` bounds the whole download, waits between tries included: no
connect, read or wait is begun past it, and when it passes the open connections'
sockets are shut down, so a server that trickles its headers or its body a byte at
a time (each read well within ``timeout_s``) is cut off then (a TLS handshake is
bounded per read only). A ``Retry-After`` longer than ``max_retry_after_s`` ends
the download at once rather than waiting it out (or retrying early into another
refusal). Each ends in one line naming the param to raise.

Redirects: every hop is checked as the first URL is (http or https only), an https
URL may not be redirected to plain http, and a redirect may lead to a loopback,
private, link-local or otherwise internal address only when it stays on the origin
(scheme, host and port) of the URL the user gave: a public URL cannot send the
download to a service on the machine or its network.

Secrets: signed URLs carry tokens in their query string, so URLs appear in
messages and logs without query, fragment or user info (:func:`display_url`),
errors of the HTTP library (whose text quotes the URL) are reduced to their class
name, and the debug logs of urllib3 and requests pass through a filter that
removes query strings and Authorization values (:func:`redact`).
"""

from __future__ import annotations

import email.utils
import io
import ipaddress
import logging
import math
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit

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
    """The server's Retry-After in seconds (a number of seconds, or an HTTP date), or None when absent
    or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


class RedirectRefused(ValueError):
    """A redirect the download does not follow (another scheme, a downgrade, an internal address)."""


def _is_internal(host: str) -> bool:
    """Whether ``host`` is, or resolves to, a loopback, private, link-local, unspecified, reserved or
    multicast address (any of its addresses; a name that does not resolve is not internal: the
    request then fails on its own)."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return False
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified or ip.is_reserved
                or ip.is_multicast):
            return True
    return False


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def _tracking_pool(pool_class: type, connections: list) -> type:
    """A subclass of the connection pool ``pool_class`` that appends each connection it makes to ``connections``."""
    if getattr(pool_class, "tracks_connections", False):
        return pool_class

    class TrackingPool(pool_class):
        tracks_connections = True

        def _new_conn(self):
            connection = super()._new_conn()
            connections.append(connection)
            return connection

    return TrackingPool


class TrackingAdapter(requests.adapters.HTTPAdapter):
    """An adapter whose connections (direct or through a proxy) are all listed in ``connections``."""

    def __init__(self, connections: list):
        self.connections = connections  # before HTTPAdapter.__init__, which makes the pool manager
        super().__init__()

    def _track(self, manager):
        manager.pool_classes_by_scheme = {
            scheme: _tracking_pool(pool, self.connections) for scheme, pool in manager.pool_classes_by_scheme.items()
        }
        return manager

    def init_poolmanager(self, *args, **kwargs) -> None:
        """Make the pool manager, its pools listing their connections."""
        super().init_poolmanager(*args, **kwargs)
        self._track(self.poolmanager)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        """The proxy's pool manager, its pools listing their connections."""
        return self._track(super().proxy_manager_for(proxy, **proxy_kwargs))


class CheckedSession(requests.Session):
    """A session that checks every redirect's target before following it (see the module docstring), and
    whose connections :meth:`shut_down` can end from another thread."""

    def __init__(self, origin: str):
        super().__init__()
        self.origin = origin
        self.connections: list = []
        self.was_shut_down = False  # a response read after shut_down may look whole and be cut short
        adapter = TrackingAdapter(self.connections)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def shut_down(self) -> None:
        """Shut down the socket of every connection made so far (safe from any thread): a read blocked in
        one returns at once, as if the server had closed it."""
        self.was_shut_down = True
        for connection in list(self.connections):
            sock = getattr(connection, "sock", None)
            if sock is None:
                continue
            try:
                # The plain socket's shutdown, also for a TLS socket: SSLSocket.shutdown would unwrap it
                # under the reading thread's feet.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except (OSError, TypeError):
                # Closed already, detached in a TLS handshake, or TLS in TLS (a proxy): bounded per read only.
                pass

    def get_redirect_target(self, response):
        """The redirect's target, checked; ``RedirectRefused`` in one line when it may not be followed."""
        location = super().get_redirect_target(response)
        if location is None:
            return None
        target = urljoin(response.url, location)
        try:
            check_url(target)
        except ValueError as error:
            raise RedirectRefused(f"{display_url(self.origin)} redirected to {error}") from None
        if urlsplit(response.url).scheme == "https" and urlsplit(target).scheme == "http":
            raise RedirectRefused(
                f"{display_url(self.origin)} redirected from https to plain http ({display_url(target)}): refused"
            )
        if _origin(target) != _origin(self.origin) and _is_internal(urlsplit(target).hostname or ""):
            raise RedirectRefused(
                f"{display_url(self.origin)} redirected to {display_url(target)}, an internal address "
                "(loopback, private or link-local) on another host or port: refused"
            )
        return location


class DeadlinePassed(Exception):
    """The whole download ran past ``deadline_s``."""


def _too_large(url: str, what: str, max_bytes: int) -> ValueError:
    """The error for a body past the download limit."""
    return ValueError(
        f"download of {display_url(url)} refused: {what}, over the limit of {max_bytes} bytes "
        "(download.limits.max_total_bytes)"
    )


def _fetch_once(
    session: requests.Session, url: str, part: Path, timeout_s: float, progress: bool, max_bytes: int,
    deadline: float = math.inf,
) -> None:
    """One request: append to ``part`` (Range) or rewrite it; raise TransientError if incomplete,
    DeadlinePassed once ``time.monotonic()`` passes ``deadline``."""
    if time.monotonic() >= deadline:  # no request is begun past the deadline, not even a short one
        raise DeadlinePassed("before the next request")
    have = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}  # the byte count must match Content-Length
    if have:
        headers["Range"] = f"bytes={have}-"
    # No connect or read may outlast the deadline either.
    wait_s = max(0.001, min(timeout_s, deadline - time.monotonic()))
    with session.get(url, headers=headers, stream=True, timeout=(wait_s, wait_s)) as response:
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
                    if time.monotonic() > deadline:  # a body that trickles in never ends on its own
                        raise DeadlinePassed(f"after {size} bytes")
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


@dataclass(frozen=True)
class DownloadBudget:
    """What one download may take: ``retries`` after the first try, ``timeout_s`` for each connect and read,
    at most ``max_bytes``, ``deadline_s`` in all (waits between retries included), no wait longer than
    ``max_retry_after_s`` a server asks for, and the first wait between retries (``backoff_s``, doubling)."""

    retries: int
    timeout_s: float
    max_bytes: int
    deadline_s: float = math.inf
    max_retry_after_s: float = math.inf
    backoff_s: float = BACKOFF_S


def download_file(
    url: str, target: str | Path, budget: DownloadBudget, *, verify: Callable[[Path], None] | None = None,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``target`` (resumed, retried, verified, within ``budget``, redirects checked) and
    return ``target``; ``ValueError`` in one line otherwise."""
    retries, timeout_s, max_bytes = budget.retries, budget.timeout_s, budget.max_bytes
    deadline_s, max_retry_after_s, backoff_s = budget.deadline_s, budget.max_retry_after_s, budget.backoff_s
    check_url(url)
    redact_library_logs()
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.part")
    part.unlink(missing_ok=True)
    session = CheckedSession(url)
    deadline = time.monotonic() + deadline_s
    # Reads are bounded one by one (timeout_s); one that a trickling server keeps fed is ended from outside.
    watchdog = threading.Timer(deadline_s, session.shut_down) if math.isfinite(deadline_s) else None
    if watchdog is not None:
        watchdog.daemon = True
        watchdog.start()
    past_deadline = (
        f"download of {display_url(url)} ran past download.deadline_s={deadline_s:g} s "
        "(raise it for a slow line, or use another source)"
    )
    logger.info("downloading %s", display_url(url))
    try:
        failures = 0
        while True:
            try:
                _fetch_once(session, url, part, timeout_s, progress, max_bytes, deadline)
                break
            except DeadlinePassed as error:
                raise ValueError(f"{past_deadline}; {error}") from None
            except RedirectRefused as error:
                raise ValueError(f"download refused: {error}") from None
            except (requests.ConnectionError, requests.Timeout, TransientError) as error:
                if time.monotonic() >= deadline:
                    raise ValueError(past_deadline) from None
                failures += 1
                reason = str(error) if isinstance(error, TransientError) else error.__class__.__name__
                if failures > retries:
                    raise ValueError(
                        f"download of {display_url(url)} failed after {retries} retries: {reason}"
                    ) from None
                wait = getattr(error, "wait_s", None)
                if wait is not None and wait > max_retry_after_s:
                    raise ValueError(
                        f"download of {display_url(url)} stopped: the server asks to wait {wait:.0f} s before "
                        f"retrying ({reason}), over download.max_retry_after_s={max_retry_after_s:g}"
                    ) from None
                wait = min(backoff_s * 2 ** (failures - 1), MAX_BACKOFF_S) if wait is None else wait
                if time.monotonic() + wait > deadline:
                    raise ValueError(f"{past_deadline}; the next retry would start {wait:.0f} s later") from None
                logger.warning(
                    "download interrupted (%s); retry %d/%d in %.1fs", reason, failures, retries, wait
                )
                time.sleep(wait)
            except requests.RequestException as error:
                # Invalid URLs, too many redirects...: the library's text quotes the URL, query included.
                raise ValueError(f"download of {display_url(url)} failed: {error.__class__.__name__}") from None
        if watchdog is not None:
            watchdog.cancel()
        if session.was_shut_down:  # e.g. header lines that ended when the socket did, and no body
            raise ValueError(past_deadline)
        if verify is not None:
            try:
                verify(part)
            except ValueError as error:
                raise ValueError(
                    f"downloaded file from {display_url(url)} failed verification: {error}"
                ) from None
        os.replace(part, target)
    finally:
        if watchdog is not None:
            watchdog.cancel()
        part.unlink(missing_ok=True)
        session.close()
    logger.info("downloaded %s (%d bytes)", target.name, target.stat().st_size)
    return target
