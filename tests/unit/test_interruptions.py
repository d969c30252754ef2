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
             "debris.sweep_debris(); "
             "print(sorted(name for name in sys.modules if name == 'dvc' or name.startswith('dvc.')))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# No process has this pid: Linux never hands out one at or above PID_MAX_LIMIT (2**22), whatever pid_max says.
DEAD_PID = 2**22 + 1


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """The project's dvc.yaml and params.yaml in an empty folder, the working directory."""
    import shutil

    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def make(path: str, old: bool = False, folder: bool = True):
    """A temporary at ``path`` (a folder with a file in it, or a file); ``old``: made a minute ago."""
    import time
    from pathlib import Path

    made = Path(path)
    made.parent.mkdir(parents=True, exist_ok=True)
    if folder:
        made.mkdir()
        (made / "half-written").write_text("x")
    else:
        made.write_text("x")
    if old:
        os.utime(made, (time.time() - 60, time.time() - 60))
    return made


def test_a_stage_start_removes_the_dead_temporaries_of_every_stage(checkout) -> None:
    """A stage that DVC restores from its run cache, or finds unchanged, never starts again: whichever stage
    starts removes what the others' killed runs left, but never a live process's, nor another stage's
    pid-less older names (age-based: they could be a running stage's)."""
    from pathlib import Path

    from catsdogs.core.debris import remove_debris

    dead = {
        make(f"data/.raw.{DEAD_PID}.abcd1234.tmp"),  # download's tree
        make(f"data/.raw.{DEAD_PID}.efgh5678.tmp-download"),  # download's scratch folder
        make(f"models/.top.keras.{DEAD_PID}.abcd1234.tmp.keras", folder=False),  # train_top's model
        make(f"reports/scratch/.metrics.json.{DEAD_PID}.abcd1234.tmp.json", folder=False),  # a metric
        make(f".features.{DEAD_PID}.abcd1234.tmp"),  # extract_features' folder
        make(f"reports/figures/.roc.png.{DEAD_PID}.abcd1234.tmp.png", folder=False),  # inside reports' folder
        make(f"data/.train.{DEAD_PID}.abcd1234.tmp"),  # split's own
    }
    live = {make(f"data/.raw.{os.getppid()}.abcd1234.tmp"),  # a download running now
            make(f"models/.top.keras.{os.getppid()}.abcd1234.tmp.keras", folder=False)}
    others_legacy = {make("data/.download-abc123", old=True), make("data/.raw.abcd1234.tmp", old=True)}
    own_legacy = {make("data/.split-normalized-abc123", old=True), make("data/.train.abcd1234.tmp", old=True)}
    unrelated = {make("data/.raw.notes", folder=False), make(f"data/.raw.{DEAD_PID}.abcd1234.partial")}

    removed = set(remove_debris("split"))
    assert removed == dead | own_legacy
    assert all(not path.exists() for path in removed)
    assert all(path.exists() for path in live | others_legacy | unrelated)

    assert set(remove_debris("download")) == others_legacy  # their owner removes them
    assert all(path.exists() for path in live | unrelated)
    assert Path("data/.raw.notes").read_text() == "x"


def test_given_outputs_are_searched_alone(checkout) -> None:
    """resume.py hands its backup folders in: only those are searched, not every stage's outputs."""
    from catsdogs.core.debris import remove_debris

    other = make(f"data/.raw.{DEAD_PID}.abcd1234.tmp")
    snapshot = make(".backups/train_scratch-k/epoch-0001")
    inside = make(f".backups/train_scratch-k/epoch-0001/.weights.h5.{DEAD_PID}.abcd1234.tmp.weights.h5")
    assert remove_debris("train_scratch", outputs=[snapshot]) == [inside]
    assert other.exists()


def test_the_sweep_removes_every_stages_dead_temporaries_and_no_pid_less_name(checkout, caplog) -> None:
    """``python -m catsdogs.stages --sweep`` runs no stage: the pid-named temporaries of dead processes go,
    in one log line; live ones and every pid-less older name (no stage starts to own them) stay."""
    import logging

    from catsdogs.stages.__main__ import main

    dead = {make(f"data/.raw.{DEAD_PID}.abcd1234.tmp"), make(f"data/.raw.{DEAD_PID}.efgh5678.tmp-download"),
            make(f".train.{DEAD_PID}.abcd1234.tmp-normalized"),
            make(f"models/.scratch.keras.{DEAD_PID}.abcd1234.tmp.keras", folder=False)}
    kept = {make(f"data/.raw.{os.getppid()}.abcd1234.tmp"), make("data/.download-abc123", old=True),
            make("data/.split-normalized-abc123", old=True), make("data/.train.abcd1234.tmp", old=True)}
    caplog.set_level(logging.INFO)
    main(["--sweep"])
    assert all(not path.exists() for path in dead)
    assert all(path.exists() for path in kept)
    lines = [record.getMessage() for record in caplog.records if "left by an interrupted run" in record.getMessage()]
    assert len(lines) == 1 and all(str(path) in lines[0] for path in dead), lines


def test_the_sweep_fails_in_one_line_outside_a_checkout_or_with_outputs_that_do_not_resolve(
    tmp_path, monkeypatch, capsys
) -> None:
    from catsdogs.core.debris import sweep_debris
    from catsdogs.stages.__main__ import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no dvc.yaml in"):
        sweep_debris()
    with pytest.raises(SystemExit) as exit_info:
        main(["--sweep"])
    assert exit_info.value.code == 1
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    (tmp_path / "params.yaml").write_text("paths: {raw: data/raw}\n")
    with pytest.raises(ValueError, match="stage download do not resolve: params.yaml has no 'paths.raw_manifest'"):
        sweep_debris()


def test_the_usage_names_the_sweep() -> None:
    from catsdogs.stages.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--nope"])
    assert "python -m catsdogs.stages {download," in str(exit_info.value.code)
    assert "python -m catsdogs.stages --sweep" in str(exit_info.value.code)
