"""No credential in anything the project writes or prints, whatever the environment says.

The integration tier's share (stages in subprocesses, dvc, training for seconds); the fast
tests, and what the module covers, are in tests/unit/test_secrets.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import ROOT, run
from tests.unit.test_http import microsoft_zip, serve  # noqa: F401  (serve is a fixture)
from tests.unit.test_secrets import (
    KAGGLE_KEY,
    KAGGLE_USER,
    SIGNED_URL_TOKEN,
    SUBPROCESS_TIMEOUT_S,
    hostile_environment,
    leaks,
    leaks_in_tree,
)


@pytest.mark.slow
def test_dvc_repro_with_a_signed_url_keeps_its_token_out_of_dvc_lock(dvc_repo, serve):  # noqa: F811
    url, state = serve(microsoft_zip(), "normal", name="data.zip")
    params = yaml.safe_load((dvc_repo / "params.yaml").read_text())
    params["download"].update({"source": "url", "url_env": "CATSDOGS_DATA_URL"})
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (dvc_repo / "home").mkdir()
    env = hostile_environment(dvc_repo / "home", CATSDOGS_DATA_URL=f"{url}?X-Amz-Signature={SIGNED_URL_TOKEN}")
    env["PYTHONPATH"] = str(dvc_repo)  # the repository's own copy of the code, as dvc runs it
    result = subprocess.run(["dvc", "repro", "download"], cwd=dvc_repo, env=env, capture_output=True,
                            timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    lock = yaml.safe_load((dvc_repo / "dvc.lock").read_text())
    assert lock["stages"]["download"]["params"]["params.yaml"]["download"]["url_env"] == "CATSDOGS_DATA_URL"
    assert len(state.requests) == 1
    found = leaks(result.stdout, "dvc's stdout") + leaks(result.stderr, "dvc's stderr") + leaks_in_tree(dvc_repo)
    assert found == []


@pytest.mark.parametrize("name", ["kaggle.json", "access_token", ".kaggle/kaggle.json", "nested/dir/access_token"])
def test_gitignore_keeps_kaggle_credentials_out_of_git(name, tmp_path):
    shutil.copy(ROOT / ".gitignore", tmp_path / ".gitignore")
    run(["git", "init", "-q"], tmp_path)
    secret = tmp_path / name
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text(json.dumps({"username": KAGGLE_USER, "key": KAGGLE_KEY}))
    (tmp_path / "notes.txt").write_text("tracked")
    assert run(["git", "check-ignore", "--quiet", name], tmp_path, check=False).returncode == 0  # 0: ignored
    run(["git", "add", "-A"], tmp_path)
    tracked = run(["git", "ls-files"], tmp_path).stdout.split()
    assert tracked == [".gitignore", "notes.txt"]  # git add -A took everything else, not the credentials
