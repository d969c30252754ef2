"""A model as a DVC artifact: pushed from one clone, fetched by a teammate without the photos.

The owner trains, pushes to the remote and registers a version with a Git tag
(``scratch-model@v0.1.0``, GTO's format, which ``dvc artifacts get`` resolves);
the teammate runs ``dvc artifacts get <repo> scratch-model`` in an empty folder
and ``catsdogs predict`` with that file. Both remotes the suite uses: a shared
folder and S3 (moto on loopback).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from catsdogs.sources.synthetic import write_kaggle_test
from tests.conftest import run, update_params
from tests.integration.test_pipeline_compare import TINY  # the tiny pipeline: one epoch at 32 px
from tests.integration.test_remote import BUCKET, s3_server  # noqa: F401  (a fixture)

pytestmark = pytest.mark.slow



def predictions(folder: Path, model: str) -> str:
    """``catsdogs predict photos/ --model <model> --format csv`` run in ``folder``."""
    return run(["catsdogs", "predict", "photos", "--model", model, "--format", "csv"], folder).stdout


@pytest.mark.parametrize("remote_kind", ["directory", "s3"])
def test_a_teammate_gets_a_model_without_the_data_and_predicts_the_same(
    dvc_repo: Path, tmp_path: Path, remote_kind: str, request
) -> None:
    update_params(dvc_repo, TINY)
    run(["dvc", "repro", "train_scratch"], dvc_repo)
    if remote_kind == "directory":
        run(["dvc", "remote", "add", "-d", "shared", str(tmp_path / "remote")], dvc_repo)
    else:
        endpoint, _ = request.getfixturevalue("s3_server")
        run(["dvc", "remote", "add", "-d", "s3", f"s3://{BUCKET}/catsdogs"], dvc_repo)
        run(["dvc", "remote", "modify", "s3", "endpointurl", endpoint], dvc_repo)
    run(["git", "add", "-A"], dvc_repo)
    run(["git", "commit", "-qm", "a trained model"], dvc_repo)
    run(["dvc", "push"], dvc_repo)
    run(["git", "tag", "-a", "scratch-model@v0.1.0", "-m", "the first scratch model"], dvc_repo)

    teammate = tmp_path / "teammate"
    teammate.mkdir()
    fetched = run(["dvc", "artifacts", "get", str(dvc_repo), "scratch-model", "-o", "scratch.keras"], teammate)
    assert "Downloaded 1 file" in fetched.stdout + fetched.stderr
    assert sorted(path.name for path in teammate.iterdir()) == ["scratch.keras"]  # the model alone, no photos
    assert (teammate / "scratch.keras").read_bytes() == (dvc_repo / "models/scratch.keras").read_bytes()
    again = run(["dvc", "artifacts", "get", str(dvc_repo), "scratch-model", "--rev", "v0.1.0", "-o", "v0.1.0.keras"],
                teammate)
    assert again.returncode == 0 and (teammate / "v0.1.0.keras").is_file()

    photos = write_kaggle_test(tmp_path / "photos", 6, 40, seed=11)
    for folder in (teammate, dvc_repo):
        shutil.copytree(photos[0].parent, folder / "photos")
    expected = predictions(dvc_repo, "models/scratch.keras")
    assert len(expected.splitlines()) == 1 + len(photos)
    assert predictions(teammate, "scratch.keras") == expected  # no params.yaml there: the defaults, the same numbers
