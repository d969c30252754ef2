"""No credential in anything the project writes or prints, whatever the environment says.

Known fake credentials (a Kaggle token, a Kaggle username/key, a kaggle.json,
AWS keys, a signed-URL token) are put in the environment of real runs of the
download stage, one per source, with ``VERBOSE=1`` (which makes the Kaggle
client print its requests' headers) and debug logging on. Kaggle is the real
client against a fake Kaggle server on 127.0.0.1 (``KAGGLE_API_ENVIRONMENT=LOCALHOST``
and an HTTP proxy), the URL sources a real HTTP server. Every byte of stdout,
stderr (logs and error messages), the files written and, after a real
``dvc repro``, dvc.lock is scanned for the credentials, in clear and base64.
Also: .gitignore keeps Kaggle's credential files out of git.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.unit.test_http import microsoft_zip, serve  # noqa: F401  (serve is a fixture)
from tests.unit.test_kaggle_source import TEST_ZIP, TRAIN_ZIP, fake_kaggle_server  # noqa: F401  (a fixture)

KAGGLE_USER = "fake-kaggle-user"
KAGGLE_KEY = "fakeKaggleKey0d5c9e2b7a41f386"
KAGGLE_TOKEN = "KGAT_fakeAccessToken7f3a9c21e8b4"
SIGNED_URL_TOKEN = "fakeSignature5b2e8d17c4a9"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKEFAKE7Q2W9E4R",
    "AWS_SECRET_ACCESS_KEY": "fakeAwsSecretKey/3kP9x+Lw2Qz8Rt5Yb7Nc1Vd",
    "AWS_SESSION_TOKEN": "fakeAwsSessionTokenM4n8Bv2Cx6Zl",
}
# Every form in which a credential could leak.
NEEDLES = {
    "Kaggle key": KAGGLE_KEY,
    "Kaggle key (Basic auth)": base64.b64encode(f"{KAGGLE_USER}:{KAGGLE_KEY}".encode()).decode(),
    "Kaggle token": KAGGLE_TOKEN,
    "signed-URL token": SIGNED_URL_TOKEN,
    "Kaggle's signed-URL token": "signed-url-token-Zq81",  # FakeKaggle.signature
    **{name: value for name, value in CREDENTIALS.items()},
}
SUBPROCESS_TIMEOUT_S = 120


def leaks(content: str | bytes, where: str) -> list[str]:
    """The credentials found in ``content``, each as 'NAME in WHERE'."""
    data = content.encode() if isinstance(content, str) else content
    return [f"{name} in {where}" for name, needle in NEEDLES.items() if needle.encode() in data]


def leaks_in_tree(root: Path) -> list[str]:
    """The credentials found in any file under ``root`` (.git and the fake HOME's credential files excepted)."""
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and relative.parts[0] not in (".git", "home"):
            found += leaks(path.read_bytes(), str(relative))
    return found


def hostile_environment(home: Path, **extra: str) -> dict[str, str]:
    """The test process's environment plus every fake credential, VERBOSE=1 and debug logging."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KAGGLE_", "AWS_"))}
    env.update(CREDENTIALS)
    env.update({
        "HOME": str(home),
        "VERBOSE": "1",  # the Kaggle client then prints every request with its headers
        "VERBOSE_OUTPUT": "1",
        "CATSDOGS_LOG_LEVEL": "DEBUG",  # urllib3 and requests then log every request line
        "PYTHONPATH": str(ROOT),
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "NO_PROXY": "127.0.0.1",  # the URL sources' server is reached directly...
        "no_proxy": "127.0.0.1",
    })
    env.update(extra)
    return env


def write_project(folder: Path, download: dict) -> None:
    """A folder with the project's params.yaml, its download section updated."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["download"].update(download)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run_download(folder: Path, env: dict) -> subprocess.CompletedProcess:
    """``python -m catsdogs.stages download`` in ``folder``."""
    return subprocess.run(
        [sys.executable, "-m", "catsdogs.stages", "download"], cwd=folder, env=env, capture_output=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )


def kaggle_setup(start_server, tmp_path: Path, credentials: str):
    """A fake Kaggle server accepting our fake credentials, and the environment that reaches it."""
    home = tmp_path / "home"
    home.mkdir()
    server = start_server({"train.zip": TRAIN_ZIP, "test.zip": TEST_ZIP}, username=KAGGLE_USER, key=KAGGLE_KEY,
                          token=KAGGLE_TOKEN)
    extra = {"KAGGLE_API_ENVIRONMENT": "LOCALHOST", "HTTP_PROXY": server.proxy, "http_proxy": server.proxy}
    if credentials == "key":
        extra |= {"KAGGLE_USERNAME": KAGGLE_USER, "KAGGLE_KEY": KAGGLE_KEY}
    elif credentials == "token":
        extra |= {"KAGGLE_API_TOKEN": KAGGLE_TOKEN}
    elif credentials == "kaggle.json":
        (home / ".kaggle").mkdir()
        (home / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": KAGGLE_USER, "key": KAGGLE_KEY}))
        (home / ".kaggle" / "kaggle.json").chmod(0o600)
    elif credentials == "rejected":
        server.key = "another-key"
        extra |= {"KAGGLE_USERNAME": KAGGLE_USER, "KAGGLE_KEY": KAGGLE_KEY}
    return server, hostile_environment(home, **extra)


@pytest.mark.parametrize("credentials", ["key", "token", "kaggle.json", "rejected"])
def test_the_kaggle_source_prints_no_credential(credentials, fake_kaggle_server, tmp_path):  # noqa: F811
    server, env = kaggle_setup(fake_kaggle_server, tmp_path, credentials)
    write_project(tmp_path, {"source": "kaggle"})
    result = run_download(tmp_path, env)
    sent = {request["headers"].get("Authorization") for request in server.requests}
    assert sent & {f"Basic {NEEDLES['Kaggle key (Basic auth)']}", f"Bearer {KAGGLE_TOKEN}"}  # a credential was used
    if credentials == "rejected":
        assert result.returncode == 1 and b"Kaggle rejected the credentials (401 Unauthorized)" in result.stderr
    else:
        assert result.returncode == 0, result.stderr.decode()[-2000:]
        assert len(list((tmp_path / "data" / "raw" / "train").iterdir())) == 5
        assert any(request["path"].endswith("/train.zip") for request in server.requests)  # the signed URL was used
    assert b"urllib3.connectionpool" in result.stderr  # debug logging was really on
    found = leaks(result.stdout, "stdout") + leaks(result.stderr, "stderr") + leaks_in_tree(tmp_path)
    assert found == []


@pytest.mark.parametrize("case", ["microsoft", "url_env", "url_refused", "archive", "dir", "synthetic"])
def test_the_other_sources_print_no_credential(case, serve, tmp_path):  # noqa: F811
    url, state = serve(microsoft_zip(), "not_found" if case == "url_refused" else "normal", name="data.zip")
    signed = f"{url}?X-Amz-Expires=600&X-Amz-Signature={SIGNED_URL_TOKEN}"
    (tmp_path / "home").mkdir()
    env = hostile_environment(tmp_path / "home", CATSDOGS_DATA_URL=signed)
    archive = tmp_path / "given.zip"
    archive.write_bytes(microsoft_zip())
    given = tmp_path / "given" / "train"
    given.mkdir(parents=True)
    (given / "cat.1.jpg").write_bytes(b"c")
    (given / "dog.1.jpg").write_bytes(b"d")
    download = {
        "microsoft": {"source": "microsoft", "microsoft_url": url},
        "url_env": {"source": "url", "url_env": "CATSDOGS_DATA_URL"},
        "url_refused": {"source": "url", "url_env": "CATSDOGS_DATA_URL", "retries": 0},
        "archive": {"source": "archive", "archive": str(archive)},
        "dir": {"source": "dir", "dir": str(given)},
        "synthetic": {"source": "synthetic", "synthetic": {"count": 4, "size": 16, "test_count": 0}},
    }[case]
    write_project(tmp_path, download)
    result = run_download(tmp_path, env)
    if case == "url_refused":
        assert result.returncode == 1
        assert f"download of {url} failed: HTTP 404 Not Found".encode() in result.stderr
    else:
        assert result.returncode == 0, result.stderr.decode()[-2000:]
    if case.startswith("url"):
        assert len(state.requests) == 1  # the signed URL was fetched
        assert b"urllib3.connectionpool" in result.stderr
    found = leaks(result.stdout, "stdout") + leaks(result.stderr, "stderr") + leaks_in_tree(tmp_path)
    assert found == []


