"""Interrupted stages: debris is cleaned up on the next start, and a killed `dvc repro` reruns to
the same outputs as an uninterrupted one."""

from __future__ import annotations

import os

import pytest
import yaml

from tests.conftest import ROOT


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


def test_the_outputs_resolve_as_dvc_itself_resolves_them(monkeypatch) -> None:
    """debris fills in ``${...}`` itself (importing dvc in a stage process would set up DVC's logging): on
    every stage of dvc.yaml, and on params with other paths, it gives what DVC's own interpolation gives."""
    from dvc.parsing.context import Context

    from catsdogs.core.debris import declared_outputs
    from catsdogs.core.params_yaml import parse_params

    monkeypatch.chdir(ROOT)
    params = parse_params((ROOT / "params.yaml").read_text())
    for stage, definition in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        entries = [*definition.get("outs", []), *definition.get("metrics", [])]
        expected = [entry if isinstance(entry, str) else next(iter(entry)) for entry in Context(params).resolve(entries)]
        assert [str(path) for path in declared_outputs(stage)] == expected, stage


def test_a_key_params_yaml_lacks_is_named() -> None:
    from catsdogs.core.debris import interpolate

    assert interpolate("${paths.raw}/x and ${ a.b }", {"paths": {"raw": "data/raw"}, "a": {"b": 3}}) == "data/raw/x and 3"
    with pytest.raises(KeyError, match="paths.nope"):
        interpolate("${paths.nope}", {"paths": {}})


def test_a_stage_start_does_not_import_dvc() -> None:
    """Importing dvc runs its logging set-up (colorama wraps sys.stderr), after which tqdm's logging redirect
    prints every log line twice beside a progress bar: the stage runner and the debris cleanup keep it out."""
    import subprocess
    import sys

    probe = ("import sys; from catsdogs.core import debris, runner, quiet; debris.remove_debris('split'); "
             "print(sorted(name for name in sys.modules if name == 'dvc' or name.startswith('dvc.')))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
