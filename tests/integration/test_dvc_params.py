"""Each stage reads exactly the params its dvc.yaml entry declares.

The integration tier's share (stages in subprocesses, dvc, training for seconds); the fast
tests, and what the module covers, are in tests/unit/test_dvc_params.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_SYNTHETIC = {"download": {"source": "synthetic", "synthetic": {"count": 4, "size": 16, "test_count": 0}}}



@pytest.mark.slow
@pytest.mark.parametrize(
    ("how", "fragments"),
    [
        # `dvc exp run -S` writes 1:20 unquoted: YAML 1.1 read it as 80, DVC records the string '1:20'.
        ("exp run -S common.seed=1:20", ["common.seed", "'1:20'", "base 60", "write"]),
        # 017: YAML 1.1 read 15, DVC records 17.
        ("seed: 017 in params.yaml", ["common.seed", "write 17"]),
    ],
)
def test_a_seed_yaml_1_1_reads_differently_fails_the_stage_instead_of_running_with_another_value(
    dvc_repo: Path, how: str, fragments: list[str]
) -> None:
    from tests.conftest import run, update_params

    update_params(dvc_repo, TINY_SYNTHETIC)
    run(["git", "commit", "-qam", "tiny synthetic download"], dvc_repo)
    if how.startswith("exp run"):
        command = ["dvc", "exp", "run", "-S", "common.seed=1:20", "download"]
    else:
        params = dvc_repo / "params.yaml"
        text = params.read_text()
        assert "  seed: 42\n" in text
        params.write_text(text.replace("  seed: 42\n", "  seed: 017\n"))
        command = ["dvc", "repro", "download"]
    result = run(command, dvc_repo, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"the stage ran (with the seed YAML 1.1 reads):\n{output[-2000:]}"
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} not in:\n{output[-2000:]}"
    assert not (dvc_repo / "data" / "raw" / "train").exists()


@pytest.mark.slow
def test_the_seed_the_stage_uses_is_the_seed_dvc_lock_records(dvc_repo: Path) -> None:
    """``seed: 0o17`` is 15 for DVC (YAML 1.2) and the string '0o17' for YAML 1.1 readers: the stage must
    run with the 15 that dvc.lock records (read here with DVC's own parser)."""
    import re

    from dvc.utils.serialize import parse_yaml

    from tests.conftest import run, update_params

    update_params(dvc_repo, TINY_SYNTHETIC)
    params = dvc_repo / "params.yaml"
    text = params.read_text()
    assert "  seed: 42\n" in text
    params.write_text(text.replace("  seed: 42\n", "  seed: 0o17\n"))
    run(["git", "commit", "-qam", "seed 0o17"], dvc_repo)
    result = run(["dvc", "repro", "download"], dvc_repo, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-2000:]
    lock = parse_yaml((dvc_repo / "dvc.lock").read_text(), "dvc.lock")
    recorded = lock["stages"]["download"]["params"]["params.yaml"]["common.seed"]
    used = re.findall(r"images \(\d+px, seed (\d+)\)", output)  # catsdogs/sources/fetch.py's log line
    assert (used, recorded) == (["15"], 15), output[-2000:]
