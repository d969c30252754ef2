"""The kaggle source: the real client against a fake Kaggle server, or the client faked at its API
(KaggleApi).

The integration tier's share (stages in subprocesses, dvc, training for seconds); the fast
tests, and what the module covers, are in tests/unit/test_kaggle_source.py.
"""

from __future__ import annotations

import sys

from tests.conftest import ROOT, run


def test_the_kaggle_client_is_imported_lazily():
    code = "import sys, catsdogs.stages.download, catsdogs.sources.fetch; print('kaggle' in sys.modules)"
    result = run([sys.executable, "-c", code], ROOT, timeout=120)
    assert result.stdout.strip() == "False"
