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

The integration tier's share: the tests that start stages in subprocesses, run dvc or train
for seconds; the fast ones are in tests/unit/test_kaggle_source.py.
"""

from __future__ import annotations

import sys

from tests.conftest import ROOT, run


def test_the_kaggle_client_is_imported_lazily():
    code = "import sys, catsdogs.stages.download, catsdogs.sources.fetch; print('kaggle' in sys.modules)"
    result = run([sys.executable, "-c", code], ROOT, timeout=120)
    assert result.stdout.strip() == "False"
