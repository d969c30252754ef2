"""HTTP downloads against a real local http.server: resume, retry, verification, limits, the microsoft source."""

from __future__ import annotations

import io
import socket
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from catsdogs.core.extract import verify_zip
from catsdogs.core.params import DownloadParams, ExtractionLimits
from catsdogs.sources import http
from catsdogs.sources.fetch import download_name
from catsdogs.stages.download import build_raw

LIMITS = ExtractionLimits()
MAX_BYTES = LIMITS.max_total_bytes


def budget(**settings) -> http.DownloadBudget:
    """A download budget: a 5 s timeout and MAX_BYTES unless ``settings`` say otherwise."""
    return http.DownloadBudget(**{"timeout_s": 5, "max_bytes": MAX_BYTES, **settings})


def verify(path: Path) -> None:
    """The verification the url source uses: limits, then CRCs."""
    verify_zip(path, LIMITS)


def jpeg_bytes(seed: int) -> bytes:
    """A small, incompressible-ish JPEG (noise), so the zip is worth resuming."""
    import numpy as np

    pixels = np.random.default_rng(seed).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def microsoft_zip() -> bytes:
    """A zip in the Microsoft layout with a Thumbs.db, an empty file and a corrupt .jpg inside."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("PetImages/", b"")
        for index in range(6):
            archive.writestr(f"PetImages/Cat/{index}.jpg", jpeg_bytes(index))
            archive.writestr(f"PetImages/Dog/{index}.jpg", jpeg_bytes(100 + index))
        archive.writestr("PetImages/Cat/Thumbs.db", b"\x00thumbs")
        archive.writestr("PetImages/Dog/Thumbs.db", b"\x00thumbs")
        archive.writestr("PetImages/Dog/666.jpg", b"")  # empty, as in the real archive
        archive.writestr("PetImages/Cat/11702.jpg", b"not a jpeg at all")  # corrupt: kept, split decodes
        archive.writestr("MSR-LA - 3467.docx", b"licence")
    return buffer.getvalue()


@dataclass
class ServerState:
    """What the server serves, how it misbehaves, and what it saw."""

    payload: bytes
    behaviour: str = "normal"
    requests: list[dict] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)  # ends a held connection
    location: str = ""  # where "redirect" sends the client
    retry_after: str = ""  # the Retry-After of "retry_after"


class Handler(BaseHTTPRequestHandler):
    """Serves the payload with Range support and a few scripted failures."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_part_and_drop(self, body: bytes, announced: int) -> None:
        """A 200 announcing ``announced`` bytes that sends ``body`` and drops the connection."""
        self.send_response(200)
        self.send_header("Content-Length", str(announced))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _trickle(self, data: bytes) -> None:
        """Send ``data`` a byte every 0.1 s until the test releases the server, then drop the connection."""
        try:
            for index in range(len(data)):
                if self.server.state.release.is_set():
                    break
                self.wfile.write(data[index:index + 1])
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:  # the client gave up: what is tested
            pass
        self.close_connection = True

    def do_GET(self) -> None:
        state: ServerState = self.server.state
        state.requests.append(dict(self.headers))
        number = len(state.requests)
        payload = state.payload
        behaviour = state.behaviour
        half = len(payload) // 2
        range_header = self.headers.get("Range")
        start = int(range_header.removeprefix("bytes=").split("-")[0]) if range_header else 0
        if behaviour == "always_500" or (behaviour == "fail_twice" and number <= 2):
            return self._send(500, b"oops")
        if behaviour == "rate_limited" and number == 1:
            return self._send(429, b"slow down", {"Retry-After": "7"})
        if behaviour == "retry_after" and number == 1:
            return self._send(429, b"slow down", {"Retry-After": state.retry_after})
        if behaviour == "redirect" or (behaviour == "redirect_once" and number == 1):
            return self._send(302, b"", {"Location": state.location})
        if behaviour == "trickle":  # announces the whole body, then sends a byte every 0.1 s
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            return self._trickle(payload)
        if behaviour == "trickle_headers":  # a header line a byte every 0.1 s, for 8 s at most, then a drop
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            return self._trickle(b"a" * 80)
        if behaviour == "not_found":
            return self._send(404, b"nope")
        if behaviour == "truncated":
            return self._send(200, payload[: len(payload) // 2])
        if behaviour == "announce_huge":
            self.send_response(200)
            self.send_header("Content-Length", str(10**12))
            self.end_headers()
            self.wfile.write(payload)  # never read: the client refuses the announced size
            return None
        if behaviour == "no_length":  # no Content-Length: the body ends when the connection closes
            self.send_response(200)
            self.end_headers()
            self.wfile.write(payload)
            self.close_connection = True
            return None
        if behaviour == "longer_than_announced":  # 200: Content-Length says N, N + junk bytes follow
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload + b"junk" * 100)
            self.close_connection = True
            return None
        if behaviour == "hold_open" and number == 1:  # half the body, then silence on an open connection
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            self.wfile.write(payload[:half])
            self.wfile.flush()
            state.release.wait(10)  # the client must give up long before this
            self.close_connection = True
            return None
        if behaviour in ("interrupt", "interrupt_no_range", "wrong_offset", "long_range") and number == 1:
            return self._send_part_and_drop(payload[:half], len(payload))
        if behaviour in ("complete_then_416", "stale_then_416") and number == 1:
            # All the bytes, but a Content-Length 100 bytes too long: the client asks for the rest.
            return self._send_part_and_drop(payload, len(payload) + 100)
        if range_header and behaviour == "complete_then_416":
            return self._send(416, b"", {"Content-Range": f"bytes */{len(payload)}"})
        if range_header and behaviour == "stale_then_416":
            return self._send(416, b"", {"Content-Range": f"bytes */{len(payload) + 50}"})
        if range_header and behaviour == "wrong_offset":  # resumes from the start, claiming so
            return self._send(206, payload, {"Content-Range": f"bytes 0-{len(payload) - 1}/{len(payload)}"})
        if range_header and behaviour == "long_range":  # the right offset, then 500 bytes too many
            body = payload[start:] + b"x" * 500
            return self._send(206, body, {"Content-Range": f"bytes {start}-{len(payload) - 1}/{len(payload)}"})
        if range_header and behaviour != "interrupt_no_range":
            end = len(payload) - 1
            return self._send(206, payload[start:], {"Content-Range": f"bytes {start}-{end}/{len(payload)}"})
        return self._send(200, payload)


@pytest.fixture
def serve():
    """Start a ThreadingHTTPServer on 127.0.0.1 (port 0); returns (url, state)."""
    servers = []

    def start(payload: bytes, behaviour: str = "normal", name: str = "kagglecatsanddogs_5340.zip"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.state = ServerState(payload, behaviour)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/files/{name}", server.state

    yield start
    for server in servers:
        server.state.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    """Retry at once in tests (the backoff arithmetic itself is not what is tested)."""
    monkeypatch.setattr(http, "BACKOFF_S", 0.01)


def test_interrupted_download_resumes_with_a_range_request(serve, tmp_path):
    payload = microsoft_zip()
    url, state = serve(payload, "interrupt")
    target = http.download_file(url, tmp_path / "a.zip", budget(retries=3), verify=verify)
    assert target.read_bytes() == payload
    assert len(state.requests) == 2
    assert "Range" not in state.requests[0]
    assert state.requests[1]["Range"] == f"bytes={len(payload) // 2}-"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]  # the .part file is gone


def test_a_server_ignoring_the_range_restarts_from_zero(serve, tmp_path):
    payload = microsoft_zip()
    url, state = serve(payload, "interrupt_no_range")
    target = http.download_file(url, tmp_path / "a.zip", budget(retries=3), verify=verify)
    assert target.read_bytes() == payload  # 200 after a Range: rewritten, not appended
    assert "Range" in state.requests[1]


def test_a_stalled_connection_times_out_and_resumes(serve, tmp_path, caplog):
    # The server sends half the body and then holds the connection open, silent, for 10 s:
    # only the client's read timeout (0.3 s) gets the download going again.
    payload = microsoft_zip()
    url, state = serve(payload, "hold_open")
    caplog.set_level("WARNING", logger="catsdogs.sources.http")
    started = time.monotonic()
    target = http.download_file(url, tmp_path / "a.zip", budget(retries=2, timeout_s=0.3), verify=verify)
    elapsed = time.monotonic() - started
    assert target.read_bytes() == payload
    assert "connection broken: ReadTimeoutError" in caplog.text  # the timeout, not a closed connection
    assert elapsed < 5, f"took {elapsed:.1f}s: the read timeout did not fire"
    assert len(state.requests) == 2
    assert state.requests[1]["Range"] == f"bytes={len(payload) // 2}-"  # resumed, not restarted


def test_http_429_waits_as_long_as_retry_after_says(serve, tmp_path, monkeypatch):
    payload = microsoft_zip()
    url, state = serve(payload, "rate_limited")
    waits = []
    monkeypatch.setattr(http.time, "sleep", waits.append)
    target = http.download_file(url, tmp_path / "a.zip", budget(retries=2), verify=verify)
    assert target.read_bytes() == payload
    assert waits == [7.0]  # the server's Retry-After, not the backoff
    assert len(state.requests) == 2


def test_http_416_for_a_range_already_complete_finishes_the_download(serve, tmp_path):
    payload = microsoft_zip()
    url, state = serve(payload, "complete_then_416")
    target = http.download_file(url, tmp_path / "a.zip", budget(retries=2), verify=verify)
    assert target.read_bytes() == payload
    assert [headers.get("Range") for headers in state.requests] == [None, f"bytes={len(payload)}-"]


def test_http_416_for_a_stale_part_starts_over(serve, tmp_path, caplog):
    payload = microsoft_zip()
    url, state = serve(payload, "stale_then_416")
    caplog.set_level("WARNING", logger="catsdogs.sources.http")
    target = http.download_file(url, tmp_path / "a.zip", budget(retries=3), verify=verify)
    assert target.read_bytes() == payload
    assert "HTTP 416 for the resumed range; starting over" in caplog.text
    assert [headers.get("Range") for headers in state.requests] == [None, f"bytes={len(payload)}-", None]


def test_a_206_at_the_wrong_offset_starts_over(serve, tmp_path, caplog):
    payload = microsoft_zip()
    url, state = serve(payload, "wrong_offset")
    caplog.set_level("WARNING", logger="catsdogs.sources.http")
    target = http.download_file(url, tmp_path / "a.zip", budget(retries=3), verify=verify)
    assert target.read_bytes() == payload  # not the first half followed by the whole file
    assert "resumed at the wrong offset; starting over" in caplog.text
    assert [headers.get("Range") for headers in state.requests] == [None, f"bytes={len(payload) // 2}-", None]


def test_a_206_body_longer_than_its_range_starts_over(serve, tmp_path, caplog):
    payload = microsoft_zip()
    url, state = serve(payload, "long_range")
    caplog.set_level("WARNING", logger="catsdogs.sources.http")
    target = http.download_file(url, tmp_path / "a.zip", budget(retries=3), verify=verify)
    assert target.read_bytes() == payload
    assert f"more than the announced {len(payload)}; starting over" in caplog.text
    assert len(state.requests) == 3 and "Range" not in state.requests[2]


def test_a_body_longer_than_its_content_length_is_cut_at_the_announced_length(serve, tmp_path):
    payload = microsoft_zip()
    url, _ = serve(payload, "longer_than_announced")
    target = http.download_file(url, tmp_path / "a.zip", budget(retries=0), verify=verify)
    assert target.read_bytes() == payload


def test_a_body_without_content_length_stops_at_the_limit(serve, tmp_path):
    payload = microsoft_zip()
    url, state = serve(payload, "no_length")
    limit = len(payload) - 1000
    with pytest.raises(ValueError, match=f"the body runs past {limit} bytes, over the limit of {limit} bytes"):
        http.download_file(url, tmp_path / "a.zip", budget(retries=3, max_bytes=limit), verify=verify)
    assert len(state.requests) == 1  # refused, not retried
    assert not any(tmp_path.iterdir())
    target = http.download_file(url, tmp_path / "a.zip", budget(retries=0, max_bytes=len(payload)), verify=verify)
    assert target.read_bytes() == payload


def test_an_announced_length_over_the_limit_is_refused_unread(serve, tmp_path):
    url, _ = serve(microsoft_zip(), "announce_huge")
    message = r"the server announces 1000000000000 bytes, over the limit of \d+ bytes \(download.limits.max_total_bytes\)"
    with pytest.raises(ValueError, match=message):
        http.download_file(url, tmp_path / "a.zip", budget(retries=3))
    assert not any(tmp_path.iterdir())


def test_server_errors_are_retried(serve, tmp_path):
    payload = microsoft_zip()
    url, state = serve(payload, "fail_twice")
    target = http.download_file(url, tmp_path / "a.zip", budget(retries=2), verify=verify)
    assert target.read_bytes() == payload
    assert len(state.requests) == 3


def test_retries_run_out_with_a_clear_error(serve, tmp_path):
    url, state = serve(b"x", "always_500")
    with pytest.raises(ValueError, match="failed after 2 retries: HTTP 500"):
        http.download_file(url, tmp_path / "a.zip", budget(retries=2))
    assert len(state.requests) == 3
    assert not any(tmp_path.iterdir())


def test_client_errors_are_not_retried(serve, tmp_path):
    url, state = serve(b"x", "not_found")
    with pytest.raises(ValueError, match="HTTP 404"):
        http.download_file(url, tmp_path / "a.zip", budget(retries=5))
    assert len(state.requests) == 1


def test_a_truncated_archive_fails_verification_and_leaves_nothing(serve, tmp_path):
    url, _ = serve(microsoft_zip(), "truncated")
    with pytest.raises(ValueError, match="failed verification"):
        http.download_file(url, tmp_path / "a.zip", budget(retries=1), verify=verify)
    assert not any(tmp_path.iterdir())


def test_urls_are_logged_without_secrets_and_checked():
    assert http.display_url("https://user:pw@example.com:8443/a/b.zip?token=s#x") == "https://example.com:8443/a/b.zip"
    with pytest.raises(ValueError, match="not an http"):
        http.check_url("file:///etc/passwd")
    for bad in ("ftp://host/x.zip?token=s3cr3t", "?token=s3cr3t", "http://host:99999/x.zip?token=s3cr3t"):
        with pytest.raises(ValueError) as caught:
            http.check_url(bad)
        assert "s3cr3t" not in str(caught.value)


def test_errors_of_the_http_library_do_not_quote_the_query(tmp_path):
    # requests' InvalidURL is a ValueError whose text is the whole URL: it must not reach the user as is.
    with pytest.raises(ValueError) as caught:
        http.download_file("http://exa mple.com/x.zip?sig=s3cr3t", tmp_path / "a.zip", budget(retries=0, timeout_s=1))
    assert str(caught.value) == "download of http://exa mple.com/x.zip failed: InvalidURL"


def test_debug_logs_of_the_http_library_show_no_query_string(serve, tmp_path, caplog):
    url, _ = serve(microsoft_zip(), "normal")
    caplog.set_level("DEBUG")
    http.download_file(url + "?X-Amz-Signature=s3cr3t-signature", tmp_path / "a.zip", budget(retries=0), verify=verify)
    assert "s3cr3t" not in caplog.text
    request_lines = [r.getMessage() for r in caplog.records if r.name == "urllib3.connectionpool" and "GET" in r.getMessage()]
    assert request_lines and all("/files/kagglecatsanddogs_5340.zip?[redacted]" in line for line in request_lines)


def test_redact_removes_queries_user_info_and_authorization_values():
    text = ("GET /a.zip?sig=abc HTTP/1.1\nAuthorization: Basic c29tZW9uZTprZXk=\n"
            "{'Authorization': 'Bearer tok'} https://user:pw@host/x?y=1 What? Fine.")
    assert http.redact(text) == (
        "GET /a.zip?[redacted] HTTP/1.1\nAuthorization: [redacted]\n"
        "{'Authorization': '[redacted]'} https://[redacted]@host/x?[redacted] What? Fine."
    )


def test_microsoft_source_over_http_with_an_interruption(serve, tmp_path, caplog):
    url, state = serve(microsoft_zip(), "interrupt")
    params = DownloadParams(source="microsoft", microsoft_url=url + "?sig=secret", retries=2, timeout_s=5.0)
    raw = tmp_path / "data" / "raw"
    caplog.set_level("INFO")
    counts = build_raw(raw, Path("train"), Path("test"), seed=42, **params.model_dump())
    names = sorted(p.name for p in (raw / "train").iterdir())
    assert names == sorted([f"cat.{i}.jpg" for i in [*range(6), 11702]] + [f"dog.{i}.jpg" for i in range(6)])
    assert (raw / "train" / "cat.3.jpg").read_bytes() == jpeg_bytes(3)
    assert not (raw / "test").exists()  # the Microsoft archive has no test set
    assert (counts.train_cats, counts.train_dogs, counts.test) == (7, 6, 0)
    assert counts.skipped == {"not an image": 3, "empty": 1}
    assert any("Range" in headers for headers in state.requests)
    assert sorted(p.name for p in raw.parent.iterdir()) == ["raw"]  # no scratch or temporary folders left
    assert "secret" not in caplog.text


def test_url_source_with_a_non_zip_leaves_no_raw_folder(serve, tmp_path):
    url, _ = serve(b"<html>not a zip</html>", "normal", name="data.zip")
    params = DownloadParams(source="url", url=url, retries=0, timeout_s=5.0)
    raw = tmp_path / "data" / "raw"
    with pytest.raises(ValueError, match="not a readable zip"):
        build_raw(raw, Path("train"), Path("test"), seed=42, **params.model_dump())
    assert not any((tmp_path / "data").iterdir())


@pytest.mark.parametrize(
    ("patch", "expected"), [({"flags": 0x1}, "is encrypted"), ({"method": 99}, r"uses compression method 99 \(AES")]
)
def test_url_source_with_an_encrypted_zip_fails_verification_in_one_line(serve, tmp_path, patch, expected):
    from tests.unit.test_extract import patched_zip

    payload = patched_zip(tmp_path / "locked.zip", {"PetImages/Cat/1.jpg": b"c", "PetImages/Dog/1.jpg": b"d"}, **patch)
    url, _ = serve(payload.read_bytes(), "normal", name="data.zip")
    params = DownloadParams(source="url", url=url, retries=0, timeout_s=5.0)
    raw = tmp_path / "data" / "raw"
    with pytest.raises(ValueError, match=rf"failed verification: archive refused: member .* of data\.zip {expected}") as error:
        build_raw(raw, Path("train"), Path("test"), seed=42, **params.model_dump())
    assert "\n" not in str(error.value)
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


@pytest.mark.parametrize(
    ("path", "name"),
    [("/files/data.zip", "data.zip"), ("/files/..", "download.zip"), ("/files/.", "download.zip"), ("/", "download.zip"),
     ("/files/.hidden.zip", "download.zip"), ("/files/a%2F..%2Fb.zip", "download.zip"), ("/x/..\\..\\evil", "download.zip")],
)
def test_download_names_are_safe(path, name):
    assert download_name(f"https://example.com{path}?sig=1") == name


def test_a_url_ending_in_dot_dot_is_saved_under_a_safe_name(serve, tmp_path):
    url, _ = serve(microsoft_zip(), "normal", name="..")
    assert url.endswith("/files/..")
    params = DownloadParams(source="url", url=url, retries=0, timeout_s=5.0)
    counts = build_raw(tmp_path / "data" / "raw", Path("train"), Path("test"), seed=42, **params.model_dump())
    assert counts.train_cats == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # nothing written beside data/ (the parent of ..)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["raw"]


def test_a_signed_url_is_read_from_the_variable_url_env_names(serve, tmp_path, monkeypatch, caplog):
    url, state = serve(microsoft_zip(), "normal")
    monkeypatch.setenv("CATSDOGS_TEST_URL", url + "?X-Amz-Signature=s3cr3t-signature")
    params = DownloadParams(source="url", url_env="CATSDOGS_TEST_URL", retries=0, timeout_s=5.0)
    caplog.set_level("DEBUG")
    counts = build_raw(tmp_path / "raw", Path("train"), Path("test"), seed=42, **params.model_dump())
    assert counts.train_dogs == 6
    assert "s3cr3t" not in caplog.text
    monkeypatch.delenv("CATSDOGS_TEST_URL")
    with pytest.raises(ValueError, match="download.url_env names the environment variable CATSDOGS_TEST_URL, but it is not set"):
        build_raw(tmp_path / "raw", Path("train"), Path("test"), seed=42, **params.model_dump())


def test_a_query_string_in_download_url_is_warned_about(serve, tmp_path, caplog):
    url, _ = serve(microsoft_zip(), "normal")
    params = DownloadParams(source="url", url=url + "?token=abc", retries=0, timeout_s=5.0)
    caplog.set_level("WARNING")
    build_raw(tmp_path / "raw", Path("train"), Path("test"), seed=42, **params.model_dump())
    assert "download.url has a query string" in caplog.text and "download.url_env" in caplog.text


def test_the_url_source_caps_the_download_at_max_total_bytes(serve, tmp_path):
    payload = microsoft_zip()
    url, _ = serve(payload, "no_length", name="data.zip")
    params = DownloadParams(source="url", url=url, retries=0, timeout_s=5.0,
                            limits=ExtractionLimits(max_total_bytes=len(payload) // 2, max_ratio=1e5))
    with pytest.raises(ValueError, match=r"the body runs past \d+ bytes.*download.limits.max_total_bytes"):
        build_raw(tmp_path / "data" / "raw", Path("train"), Path("test"), seed=42, **params.model_dump())
    assert not any((tmp_path / "data").iterdir())


# --- bounded in time, redirects checked ---------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "retries"),
    [
        ("trickle", 1),  # the body: each read returns within timeout_s (a byte every 0.1 s)
        ("trickle_headers", 0),  # the header lines: no body yet, so no chunk to check the clock between
    ],
)
def test_a_trickling_server_ends_at_the_deadline_in_one_line(serve, tmp_path, behaviour, retries):
    # Only a deadline on the whole download ends it.
    url, state = serve(microsoft_zip(), behaviour)
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"ran past download\.deadline_s=1\.5 s \(raise it") as error:
        http.download_file(url, tmp_path / "a.zip", budget(retries=retries, timeout_s=3, deadline_s=1.5))
    assert time.monotonic() - started < 4
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []  # no part file left


def test_a_long_retry_after_ends_the_download_at_once(serve, tmp_path, monkeypatch):
    url, state = serve(microsoft_zip(), "retry_after")
    state.retry_after = "300"
    waits = []
    monkeypatch.setattr(http.time, "sleep", waits.append)
    with pytest.raises(ValueError, match=r"the server asks to wait 300 s before retrying \(HTTP 429 .*\), "
                                         r"over download\.max_retry_after_s=120"):
        http.download_file(url, tmp_path / "a.zip", budget(retries=5, max_retry_after_s=120))
    assert waits == [] and len(state.requests) == 1


def test_a_retry_after_date_is_understood(serve, tmp_path, monkeypatch):
    from email.utils import formatdate

    url, state = serve(microsoft_zip(), "retry_after")
    state.retry_after = formatdate(time.time() + 30, usegmt=True)
    waits = []
    monkeypatch.setattr(http.time, "sleep", waits.append)
    target = http.download_file(url, tmp_path / "a.zip", budget(retries=2, max_retry_after_s=120))
    assert target.is_file() and len(waits) == 1 and 25 <= waits[0] <= 31


def test_no_wait_runs_past_the_deadline(serve, tmp_path, monkeypatch):
    url, state = serve(microsoft_zip(), "retry_after")
    state.retry_after = "60"
    waits = []
    monkeypatch.setattr(http.time, "sleep", waits.append)
    with pytest.raises(ValueError, match=r"ran past download\.deadline_s=5 s .*the next retry would start 60 s later"):
        http.download_file(url, tmp_path / "a.zip", budget(retries=5, deadline_s=5))
    assert waits == []


def test_the_url_source_passes_the_deadline_from_its_params(serve, tmp_path):
    url, _ = serve(microsoft_zip(), "trickle")
    settings = DownloadParams(source="url", url=url, timeout_s=3, retries=1, deadline_s=1.0).model_dump()
    with pytest.raises(ValueError, match=r"download\.deadline_s=1 s"):
        build_raw(tmp_path / "raw", Path("train"), Path("test"), seed=1, **settings)
    assert not (tmp_path / "raw").exists()


def test_a_redirect_to_another_port_on_loopback_is_refused(serve, tmp_path):
    other_url, other = serve(microsoft_zip())
    url, state = serve(b"", "redirect")
    state.location = other_url
    with pytest.raises(ValueError, match=r"download refused: http://127\.0\.0\.1:\d+/files/.* redirected to "
                                         r"http://127\.0\.0\.1:\d+/files/.*an internal address"):
        http.download_file(url, tmp_path / "a.zip", budget(retries=2))
    assert len(state.requests) == 1 and other.requests == []  # never asked


def test_a_redirect_on_the_same_origin_is_followed(serve, tmp_path):
    payload = microsoft_zip()  # once: the members' times change every 2 s
    url, state = serve(payload, "redirect_once")
    state.location = "/files/elsewhere.zip"  # relative: the same scheme, host and port
    target = http.download_file(url, tmp_path / "a.zip", budget(retries=1))
    assert target.read_bytes() == payload
    assert len(state.requests) == 2


def requests_redirect(url: str, location: str, origin: str | None = None):
    """What a CheckedSession makes of a 302 from ``url`` to ``location``."""
    import requests

    response = requests.Response()
    response.status_code, response.url = 302, url
    response.headers["Location"] = location
    return http.CheckedSession(origin or url).get_redirect_target(response)


@pytest.mark.parametrize(
    ("url", "location", "expected"),
    [
        ("https://example.com/a.zip", "http://example.com/a.zip", "from https to plain http"),
        ("https://example.com/a.zip", "file:///etc/passwd", "not an http"),
        ("https://example.com/a.zip", "http://169.254.169.254/latest/meta-data/", "from https to plain http"),
        ("http://example.com/a.zip", "http://169.254.169.254/latest/meta-data/", "an internal address"),
        ("http://example.com/a.zip", "http://10.0.0.7/a.zip", "an internal address"),
        ("http://example.com/a.zip", "http://[::1]:8080/a.zip", "an internal address"),
    ],
)
def test_redirects_are_checked_hop_by_hop(url, location, expected):
    with pytest.raises(ValueError, match=expected):
        requests_redirect(url, location)
    assert requests_redirect(url, "https://example.org/b.zip") == "https://example.org/b.zip"
