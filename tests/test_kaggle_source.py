"""The kaggle source, with the client faked only at its API boundary (KaggleApi).

The fake raises what kaggle 2.x raises: ``authenticate()`` prints help and calls
``exit(1)`` (SystemExit) when it finds no credentials, and the SDK's HTTP client
raises ``requests.HTTPError`` from ``raise_for_status()`` (403 when the
competition's rules are not accepted, 401 for rejected credentials).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import requests

from stages.download import build_raw
from stages.lib.params import DownloadParams, KaggleFiles
from stages.lib.sources import ALTERNATIVES

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


def test_rejected_credentials_are_reported_without_the_key(fake_kaggle, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "s3cr3t-key-value")
    fake_kaggle(error=http_error(401, "Unauthorized"))
    caplog.set_level("DEBUG")
    with pytest.raises(ValueError, match="rejected the credentials") as caught:
        run_kaggle(tmp_path)
    assert "s3cr3t" not in str(caught.value) and "s3cr3t" not in caplog.text


def test_unknown_file_gives_a_404_hint(fake_kaggle, tmp_path):
    fake_kaggle(error=http_error(404, "Not Found"))
    with pytest.raises(ValueError, match="download.kaggle_files"):
        run_kaggle(tmp_path)


def test_the_kaggle_client_is_imported_lazily():
    code = "import sys, stages.download, stages.lib.sources; print('kaggle' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
