"""The kaggle source: the real client against a fake Kaggle server, or the client faked at its API (KaggleApi).

The fake server (:class:`FakeKaggle`) is the thinnest fake: the official client runs
unchanged, authenticates, sends its Authorization header, follows the redirect
to a signed download URL and streams the file, all over HTTP on 127.0.0.1. It is
reached as an HTTP proxy for ``http://localhost``, the endpoint the client uses
when started with ``KAGGLE_API_ENVIRONMENT=LOCALHOST`` (its ``--local`` flag).

The API-level fake raises what kaggle 2.x raises: ``authenticate()`` prints help
and calls ``exit(1)`` (SystemExit) when it finds no credentials, and the SDK's
HTTP client raises ``requests.HTTPError`` from ``raise_for_status()`` (403 when
the competition's rules are not accepted, 401 for rejected credentials).
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import io
import json
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from catsdogs.core.params import DownloadParams, KaggleFiles
from catsdogs.sources.fetch import ALTERNATIVES
from catsdogs.stages.download import build_raw

COMPETITION = "dogs-vs-cats-redux-kernels-edition"
DOWNLOAD_URL = "https://api.kaggle.com/v1/competitions.CompetitionApiService/DownloadDataFile"


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A zip of ``members`` in memory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


TRAIN_ZIP = zip_bytes({**{f"train/cat.{i}.jpg": b"cat%d" % i for i in range(3)},
                       **{f"train/dog.{i}.jpg": b"dog%d" % i for i in range(2)}})
TEST_ZIP = zip_bytes({f"test/{i}.jpg": b"test%d" % i for i in range(1, 5)})


@dataclass
class FakeKaggle:
    """What the fake Kaggle server serves and accepts, and every request it saw."""

    files: dict[str, bytes]
    username: str = "kaggle-user"
    key: str | None = None  # the legacy API key it accepts
    token: str | None = None  # the access token it accepts
    rules_accepted: bool = True
    signature: str = "signed-url-token-Zq81"  # the token in the signed download URLs it hands out
    broken_storage: bool = False  # downloads drop half-way, then every retry gets HTTP 500
    requests: list[dict] = field(default_factory=list)
    proxy: str = ""

    def authorization(self) -> set[str]:
        """The Authorization headers it accepts."""
        accepted = set()
        if self.key is not None:
            accepted.add("Basic " + base64.b64encode(f"{self.username}:{self.key}".encode()).decode())
        if self.token is not None:
            accepted.add(f"Bearer {self.token}")
        return accepted


class FakeKaggleHandler(BaseHTTPRequestHandler):
    """Kaggle's API as the client uses it: token introspection, DownloadDataFile -> 302 -> signed GET."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: dict) -> None:
        self._reply(status, json.dumps(data).encode(), {"Content-Type": "application/json"})

    def do_POST(self) -> None:
        state: FakeKaggle = self.server.state
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        path = urlsplit(self.path).path
        state.requests.append({"method": "POST", "path": path, "headers": dict(self.headers), "body": body})
        if path == "/api/v1/security.OAuthService/IntrospectToken":
            active = state.token is not None and body.get("token") == state.token
            return self._json(200, {"active": active, "username": state.username if active else ""})
        if path != "/api/v1/competitions.CompetitionApiService/DownloadDataFile":
            return self._json(404, {"code": 404, "message": "Not found"})
        if self.headers.get("Authorization") not in state.authorization():
            return self._json(401, {"code": 401, "message": "Unauthenticated"})
        if not state.rules_accepted:
            return self._json(403, {"code": 403, "message": "You must accept this competition's rules"})
        name = body.get("fileName", "")
        if name not in state.files:
            return self._json(404, {"code": 404, "message": f"No file {name}"})
        location = f"http://localhost/storage/{body.get('competitionName')}/{name}?X-Goog-Signature={state.signature}"
        return self._reply(302, headers={"Location": location})

    def do_GET(self) -> None:
        state: FakeKaggle = self.server.state
        parts = urlsplit(self.path)
        state.requests.append({"method": "GET", "path": parts.path, "headers": dict(self.headers)})
        if parse_qs(parts.query).get("X-Goog-Signature") != [state.signature]:
            return self._reply(403, b"bad signature")
        data = state.files.get(parts.path.rsplit("/", 1)[-1])
        if data is None:
            return self._reply(404, b"no such object")
        if state.broken_storage and len([r for r in state.requests if r["method"] == "GET"]) > 1:
            return self._reply(500, b"storage trouble")
        if state.broken_storage:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return None
        return self._reply(200, data, {"Content-Type": "application/zip", "Accept-Ranges": "bytes"})


@pytest.fixture
def fake_kaggle_server():
    """Start a fake Kaggle on 127.0.0.1 (port 0); ``start(files, ...)`` returns its state (``.proxy`` is its URL)."""
    servers = []

    def start(files: dict[str, bytes], **settings) -> FakeKaggle:
        server = ThreadingHTTPServer(("127.0.0.1", 0), FakeKaggleHandler)
        server.daemon_threads = True
        server.state = FakeKaggle(files, **settings)
        server.state.proxy = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server.state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def route_to(monkeypatch, state: FakeKaggle) -> None:
    """Send the client's requests for http://localhost to the fake server (as an HTTP proxy would)."""
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, state.proxy)
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def http_error(status: int, reason: str) -> requests.HTTPError:
    """The exception the Kaggle SDK raises (``http_response.raise_for_status()``)."""
    response = requests.Response()
    response.status_code = status
    response.reason = reason
    response.url = DOWNLOAD_URL
    try:
        response.raise_for_status()
    except requests.HTTPError as error:
        return error
    raise AssertionError("unreachable")


@pytest.fixture
def isolated_kaggle_env(monkeypatch, tmp_path):
    """No Kaggle credentials anywhere the client looks: env vars, ~/.kaggle, its config file."""
    for name in [name for name in list(__import__("os").environ) if name.startswith("KAGGLE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with contextlib.redirect_stdout(io.StringIO()):  # `import kaggle` prints help when unauthenticated
        # (kaggle.api is shadowed by the package's `api` object: reach the module through the importer)
        client = importlib.import_module("kaggle.api.kaggle_api_extended")
    monkeypatch.setattr(client.KaggleApi, "config", str(tmp_path / "home" / ".kaggle" / "kaggle.json"))
    return client


@pytest.fixture
def fake_kaggle(monkeypatch, isolated_kaggle_env):
    """Replace KaggleApi by a fake that 'downloads' the given files (name -> (arrived name, bytes))."""
    calls: list[dict] = []

    def install(files: dict[str, tuple[str, bytes]] | None = None, error: Exception | None = None):
        class FakeKaggleApi:
            args: list[str] = []  # the real client's command-line flags (--verbose, --local...)

            def authenticate(self) -> None:
                calls.append({"authenticate": True})

            def competition_download_file(
                self, competition, file_name, path=None, force=False, quiet=False, unzip=False
            ):
                calls.append({"competition": competition, "file_name": file_name, "path": path})
                if error is not None:
                    raise error
                arrived, data = files[file_name]
                Path(path, arrived).write_bytes(data)

        monkeypatch.setattr(isolated_kaggle_env, "KaggleApi", FakeKaggleApi)
        return calls

    return install


def run_kaggle(tmp_path: Path, **overrides):
    """Build raw/ from the kaggle source; return (counts, raw)."""
    params = DownloadParams(source="kaggle", retries=0, **overrides)
    raw = tmp_path / "data" / "raw"
    return build_raw(raw, Path("train"), Path("test"), seed=42, **params.model_dump()), raw


def test_train_and_test_archives_land_in_kaggle_naming(fake_kaggle, tmp_path):
    calls = fake_kaggle({"train.zip": ("train.zip", TRAIN_ZIP), "test.zip": ("test.zip", TEST_ZIP)})
    counts, raw = run_kaggle(tmp_path)
    assert sorted(p.name for p in (raw / "train").iterdir()) == [
        "cat.0.jpg", "cat.1.jpg", "cat.2.jpg", "dog.0.jpg", "dog.1.jpg",
    ]
    assert sorted(p.name for p in (raw / "test").iterdir()) == ["1.jpg", "2.jpg", "3.jpg", "4.jpg"]
    assert (raw / "train" / "dog.1.jpg").read_bytes() == b"dog1"
    assert (counts.train_cats, counts.train_dogs, counts.test) == (3, 2, 4)
    downloads = [call for call in calls if "file_name" in call]
    assert [(c["competition"], c["file_name"]) for c in downloads] == [
        (COMPETITION, "train.zip"), (COMPETITION, "test.zip"),
    ]
    assert sorted(p.name for p in raw.parent.iterdir()) == ["raw"]  # downloads and scratch removed


def test_server_side_zip_wrappers_are_unwrapped(fake_kaggle, tmp_path):
    # Large files can arrive as NAME.zip (the client names files after the download URL).
    wrapped = zip_bytes({"train.zip": TRAIN_ZIP})
    fake_kaggle({"train.zip": ("train.zip.zip", wrapped), "test.zip": ("test.zip", TEST_ZIP)})
    counts, _ = run_kaggle(tmp_path)
    assert (counts.train_cats, counts.train_dogs, counts.test) == (3, 2, 4)


def test_an_empty_test_name_means_no_test_set(fake_kaggle, tmp_path):
    calls = fake_kaggle({"train.zip": ("train.zip", TRAIN_ZIP)})
    counts, raw = run_kaggle(tmp_path, competition="dogs-vs-cats", kaggle_files=KaggleFiles(test=""))
    assert counts.test == 0 and not (raw / "test").exists()
    assert [c["file_name"] for c in calls if "file_name" in c] == ["train.zip"]


def test_a_train_archive_without_train_images_is_refused(fake_kaggle, tmp_path):
    fake_kaggle({"train.zip": ("train.zip", TEST_ZIP), "test.zip": ("test.zip", TEST_ZIP)})
    with pytest.raises(ValueError, match="holds no train images"):
        run_kaggle(tmp_path)
    assert not (tmp_path / "data" / "raw").exists()


def test_missing_credentials_with_the_real_client(isolated_kaggle_env, tmp_path, capsys):
    with pytest.raises(ValueError) as caught:
        run_kaggle(tmp_path)
    message = str(caught.value)
    places = ("KAGGLE_API_TOKEN", "~/.kaggle/access_token", "~/.kaggle/kaggle.json", "KAGGLE_USERNAME", "KAGGLE_KEY")
    for place in places:
        assert place in message
    for alternative in ("microsoft", "url", "archive", "dir", "synthetic"):
        assert alternative in message
    assert not (tmp_path / "data" / "raw").exists()
    assert "Authentication required" not in capsys.readouterr().out  # the client's own help is replaced


def test_missing_credentials_from_a_fake_that_exits_like_the_client(
    fake_kaggle, isolated_kaggle_env, monkeypatch, tmp_path
):
    fake_kaggle({})

    def exit_like_the_client(self):
        isolated_kaggle_env.print_auth_help()
        exit(1)

    monkeypatch.setattr(isolated_kaggle_env.KaggleApi, "authenticate", exit_like_the_client)
    with pytest.raises(ValueError, match="Kaggle credentials not found"):
        run_kaggle(tmp_path)


def test_rules_not_accepted_gives_the_rules_url(fake_kaggle, tmp_path):
    fake_kaggle(error=http_error(403, "Forbidden"))
    raw = tmp_path / "data" / "raw"
    (raw / "train").mkdir(parents=True)
    (raw / "train" / "cat.0.jpg").write_bytes(b"previous")
    with pytest.raises(ValueError) as caught:
        run_kaggle(tmp_path)
    message = str(caught.value)
    assert "403" in message and "accept the competition's rules" in message
    assert f"https://www.kaggle.com/competitions/{COMPETITION}/rules" in message
    assert ALTERNATIVES in message
    assert (raw / "train" / "cat.0.jpg").read_bytes() == b"previous"  # the old tree is untouched


@pytest.fixture
def real_kaggle_client(isolated_kaggle_env, monkeypatch):
    """The official client, started as ``KAGGLE_API_ENVIRONMENT=LOCALHOST`` starts it (its --local flag)."""
    monkeypatch.setattr(isolated_kaggle_env.KaggleApi, "args", ["--local"])
    return isolated_kaggle_env.KaggleApi


def test_the_real_client_downloads_through_the_fake_server(real_kaggle_client, fake_kaggle_server, monkeypatch, tmp_path):
    server = fake_kaggle_server({"train.zip": TRAIN_ZIP, "test.zip": TEST_ZIP}, key="right-key")
    route_to(monkeypatch, server)
    monkeypatch.setenv("KAGGLE_USERNAME", server.username)
    monkeypatch.setenv("KAGGLE_KEY", "right-key")
    counts, raw = run_kaggle(tmp_path)
    assert (counts.train_cats, counts.train_dogs, counts.test) == (3, 2, 4)
    assert (raw / "train" / "dog.1.jpg").read_bytes() == b"dog1"
    downloads = [r for r in server.requests if r["method"] == "GET"]
    assert [r["path"] for r in downloads] == [f"/storage/{COMPETITION}/train.zip", f"/storage/{COMPETITION}/test.zip"]


def test_rejected_credentials_are_reported_without_the_key(
    real_kaggle_client, fake_kaggle_server, monkeypatch, tmp_path, caplog, capfd
):
    server = fake_kaggle_server({"train.zip": TRAIN_ZIP}, key="the-right-key")
    route_to(monkeypatch, server)
    monkeypatch.setenv("KAGGLE_USERNAME", server.username)
    monkeypatch.setenv("KAGGLE_KEY", "s3cr3t-key-value")
    caplog.set_level("DEBUG")
    with pytest.raises(ValueError, match=r"Kaggle rejected the credentials \(401 Unauthorized\)") as caught:
        run_kaggle(tmp_path)
    # The server did receive the key it rejected...
    sent = base64.b64encode(f"{server.username}:s3cr3t-key-value".encode()).decode()
    assert [r["headers"].get("Authorization") for r in server.requests] == [f"Basic {sent}"]
    # ...and nothing the stage says repeats it, in clear or base64.
    out, err = capfd.readouterr()
    for text in (str(caught.value), caplog.text, out, err):
        assert "s3cr3t" not in text and sent not in text


def test_a_verbose_client_prints_no_credentials(real_kaggle_client, fake_kaggle_server, monkeypatch, tmp_path, capfd, caplog):
    # VERBOSE=1 at import gives the client --verbose, and a verbose client prints each request's headers.
    monkeypatch.setattr(real_kaggle_client, "args", ["--local", "--verbose"])
    server = fake_kaggle_server({"train.zip": TRAIN_ZIP, "test.zip": TEST_ZIP}, token="KGAT_fake-token-6Hq2")
    route_to(monkeypatch, server)
    monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_fake-token-6Hq2")
    caplog.set_level("DEBUG")
    counts, _ = run_kaggle(tmp_path)
    assert counts.test == 4
    assert "Bearer KGAT_fake-token-6Hq2" in {r["headers"].get("Authorization") for r in server.requests}
    out, err = capfd.readouterr()
    assert "---Request---" not in out + err  # our client is not verbose, whatever the environment said
    for text in (out, err, caplog.text):
        assert "KGAT_fake-token" not in text and server.signature not in text


def test_what_the_client_prints_about_failures_is_redacted(
    real_kaggle_client, fake_kaggle_server, isolated_kaggle_env, monkeypatch, tmp_path, capfd
):
    # On a broken download the client prints each retry's error, whose text quotes the signed URL.
    server = fake_kaggle_server({"train.zip": TRAIN_ZIP}, key="k3y", broken_storage=True)
    route_to(monkeypatch, server)
    monkeypatch.setenv("KAGGLE_USERNAME", server.username)
    monkeypatch.setenv("KAGGLE_KEY", "k3y")
    monkeypatch.setattr(isolated_kaggle_env.time, "sleep", lambda seconds: None)  # its retries back off for ~60 s
    with pytest.raises(ValueError, match=f"Kaggle download of {COMPETITION}/train.zip failed: HTTP 500") as caught:
        run_kaggle(tmp_path)
    out, err = capfd.readouterr()
    assert f"/storage/{COMPETITION}/train.zip?[redacted]" in out  # the client did print the URL...
    for text in (out, err, str(caught.value)):
        assert server.signature not in text  # ...without its token


def test_unknown_file_gives_a_404_hint(fake_kaggle, tmp_path):
    fake_kaggle(error=http_error(404, "Not Found"))
    with pytest.raises(ValueError, match="download.kaggle_files"):
        run_kaggle(tmp_path)


