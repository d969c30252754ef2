"""Interrupted stages: debris is cleaned up on the next start, and a killed `dvc repro` reruns to
the same outputs as an uninterrupted one."""

from __future__ import annotations

import yaml

from tests.conftest import ROOT

# --- The harness: `dvc repro` killed at chosen writes, then run again ---------------------------------


def test_every_declared_output_resolves_to_a_path_in_the_repository(monkeypatch) -> None:
    """The debris cleanup finds a stage's outputs through dvc.yaml: every ${paths.*} there must resolve
    (a key with digits, paths.vgg16_weights, once stayed a literal template and its temporaries stayed)."""
    from catsdogs.core.debris import declared_outputs

    monkeypatch.chdir(ROOT)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for stage in stages:
        outputs = declared_outputs(stage)
        assert outputs, stage
        for output in outputs:
            assert "$" not in str(output) and not output.is_absolute(), (stage, output)
