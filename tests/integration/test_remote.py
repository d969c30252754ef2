"""Sharing pipeline outputs through a DVC remote: a shared folder and a real S3-compatible server.

The S3 server is moto's, on 127.0.0.1 in this process; DVC (dvc-s3) talks to it over
HTTP exactly as it would to AWS S3 or MinIO, with credentials from the environment.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import run, update_params

pytestmark = pytest.mark.slow

BUCKET = "catsdogs-remote"


def tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under a folder, by relative path."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def s3_server(monkeypatch):
    """A moto S3 server on loopback with an empty bucket; credentials only in the environment."""
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._server.server_port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    server.stop()


def produce_raw_data(repo: Path) -> dict[str, str]:
    """Run the download stage on a tiny synthetic set and commit the pipeline's state."""
    update_params(repo, {"download": {"source": "synthetic", "synthetic": {"count": 5, "size": 32, "test_count": 2}}})
    run(["dvc", "repro", "download"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "download synthetic data"], repo)
    return tree_digest(repo / "data" / "raw")


def clone_and_pull(repo: Path, destination: Path) -> Path:
    """A teammate's machine: clone the git repo, pull the data from the remote."""
    run(["git", "clone", "-q", str(repo), str(destination)], repo.parent)
    assert not (destination / "data" / "raw").exists()
    run(["dvc", "pull", "download"], destination)
    status = run(["dvc", "status", "--json", "download"], destination).stdout.strip()
    assert status in ("{}", ""), status
    return destination


def test_shared_directory_remote_round_trip(dvc_repo: Path, tmp_path: Path):
    """Push to a shared folder; a fresh clone pulls byte-identical outputs and is up to date."""
    expected = produce_raw_data(dvc_repo)
    remote = tmp_path / "shared-remote"
    run(["dvc", "remote", "add", "-d", "shared", str(remote)], dvc_repo)
    run(["git", "commit", "-qam", "add remote"], dvc_repo)
    run(["dvc", "push"], dvc_repo)
    assert any(remote.rglob("*")), "nothing was pushed"

    clone = clone_and_pull(dvc_repo, tmp_path / "teammate")
    assert tree_digest(clone / "data" / "raw") == expected


def test_s3_remote_round_trip(dvc_repo: Path, tmp_path: Path, s3_server):
    """Push to S3 (moto on loopback); a fresh clone pulls byte-identical outputs."""
    endpoint, client = s3_server
    expected = produce_raw_data(dvc_repo)
    run(["dvc", "remote", "add", "-d", "s3", f"s3://{BUCKET}/cache"], dvc_repo)
    run(["dvc", "remote", "modify", "s3", "endpointurl", endpoint], dvc_repo)
    config = (dvc_repo / ".dvc" / "config").read_text()
    assert "testing" not in config, "credentials must stay in the environment, not the config"
    run(["git", "commit", "-qam", "add s3 remote"], dvc_repo)
    run(["dvc", "push"], dvc_repo)

    # Every file of data/raw is in the bucket under its content address (DVC 3: files/md5/ab/cdef...).
    keys = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="cache/"):
        keys.update(item["Key"] for item in page.get("Contents", []))
    for path in sorted((dvc_repo / "data" / "raw").rglob("*")):
        if path.is_file():
            md5 = hashlib.md5(path.read_bytes()).hexdigest()
            assert f"cache/files/md5/{md5[:2]}/{md5[2:]}" in keys, f"{path} is not in the bucket"

    clone = clone_and_pull(dvc_repo, tmp_path / "teammate")
    assert tree_digest(clone / "data" / "raw") == expected


def test_vgg16_weights_travel_through_the_remote(dvc_repo: Path, tmp_path: Path):
    """A machine without internet access gets the weights the team used with `dvc pull`: the clone's
    weights stage is up to date, so nothing there downloads (or regenerates) them."""
    update_params(dvc_repo, {"vgg16": {"weights": "none"}})
    run(["dvc", "repro", "weights"], dvc_repo)
    expected = hashlib.sha256((dvc_repo / "models/vgg16_notop.weights.h5").read_bytes()).hexdigest()
    remote = tmp_path / "shared-remote"
    run(["dvc", "remote", "add", "-d", "shared", str(remote)], dvc_repo)
    run(["git", "add", "-A"], dvc_repo)
    run(["git", "commit", "-qm", "weights"], dvc_repo)
    run(["dvc", "push", "weights"], dvc_repo)

    clone = tmp_path / "offline-machine"
    run(["git", "clone", "-q", str(dvc_repo), str(clone)], tmp_path)
    assert not (clone / "models/vgg16_notop.weights.h5").exists()
    run(["dvc", "pull", "weights"], clone)
    assert hashlib.sha256((clone / "models/vgg16_notop.weights.h5").read_bytes()).hexdigest() == expected
    status = run(["dvc", "status", "--json", "weights"], clone).stdout.strip()
    assert status in ("{}", ""), status
    assert "Running stage" not in run(["dvc", "repro", "weights"], clone).stdout
