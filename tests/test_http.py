"""HTTP downloads against a real local http.server: resume, retry, verification, the microsoft source."""

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

from stages.download import build_raw
from stages.lib import http
from stages.lib.extract import verify_zip
from stages.lib.params import DownloadParams


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

    def do_GET(self) -> None:
        state: ServerState = self.server.state
        state.requests.append(dict(self.headers))
        number = len(state.requests)
        payload = state.payload
        behaviour = state.behaviour
        if behaviour == "always_500" or (behaviour == "fail_twice" and number <= 2):
            return self._send(500, b"oops")
        if behaviour == "not_found":
            return self._send(404, b"nope")
        if behaviour == "truncated":
            return self._send(200, payload[: len(payload) // 2])
        if behaviour in ("interrupt", "interrupt_no_range", "stall") and number == 1:
            half = len(payload) // 2
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            self.wfile.write(payload[:half])
            self.wfile.flush()
            if behaviour == "stall":
                time.sleep(1.5)  # past the client's read timeout
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        range_header = self.headers.get("Range")
        if range_header and behaviour != "interrupt_no_range":
            start = int(range_header.removeprefix("bytes=").split("-")[0])
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
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    """Retry at once in tests (the backoff arithmetic itself is not what is tested)."""
    monkeypatch.setattr(http, "BACKOFF_S", 0.01)


def test_interrupted_download_resumes_with_a_range_request(serve, tmp_path):
    payload = microsoft_zip()
    url, state = serve(payload, "interrupt")
    target = http.download_file(url, tmp_path / "a.zip", retries=3, timeout_s=5, verify=verify_zip)
    assert target.read_bytes() == payload
    assert len(state.requests) == 2
    assert "Range" not in state.requests[0]
    assert state.requests[1]["Range"] == f"bytes={len(payload) // 2}-"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]  # the .part file is gone


def test_a_server_ignoring_the_range_restarts_from_zero(serve, tmp_path):
    payload = microsoft_zip()
    url, state = serve(payload, "interrupt_no_range")
    target = http.download_file(url, tmp_path / "a.zip", retries=3, timeout_s=5, verify=verify_zip)
    assert target.read_bytes() == payload  # 200 after a Range: rewritten, not appended
    assert "Range" in state.requests[1]


def test_a_stalled_connection_times_out_and_resumes(serve, tmp_path):
    payload = microsoft_zip()
    url, state = serve(payload, "stall")
    target = http.download_file(url, tmp_path / "a.zip", retries=2, timeout_s=0.3, verify=verify_zip)
    assert target.read_bytes() == payload
    assert "Range" in state.requests[-1]


def test_server_errors_are_retried(serve, tmp_path):
    payload = microsoft_zip()
    url, state = serve(payload, "fail_twice")
    target = http.download_file(url, tmp_path / "a.zip", retries=2, timeout_s=5, verify=verify_zip)
    assert target.read_bytes() == payload
    assert len(state.requests) == 3


def test_retries_run_out_with_a_clear_error(serve, tmp_path):
    url, state = serve(b"x", "always_500")
    with pytest.raises(ValueError, match="failed after 2 retries: HTTP 500"):
        http.download_file(url, tmp_path / "a.zip", retries=2, timeout_s=5)
    assert len(state.requests) == 3
    assert not any(tmp_path.iterdir())


def test_client_errors_are_not_retried(serve, tmp_path):
    url, state = serve(b"x", "not_found")
    with pytest.raises(ValueError, match="HTTP 404"):
        http.download_file(url, tmp_path / "a.zip", retries=5, timeout_s=5)
    assert len(state.requests) == 1


def test_a_truncated_archive_fails_verification_and_leaves_nothing(serve, tmp_path):
    url, _ = serve(microsoft_zip(), "truncated")
    with pytest.raises(ValueError, match="failed verification"):
        http.download_file(url, tmp_path / "a.zip", retries=1, timeout_s=5, verify=verify_zip)
    assert not any(tmp_path.iterdir())


def test_urls_are_logged_without_secrets_and_checked():
    assert http.display_url("https://user:pw@example.com:8443/a/b.zip?token=s#x") == "https://example.com:8443/a/b.zip"
    with pytest.raises(ValueError, match="not an http"):
        http.check_url("file:///etc/passwd")


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
