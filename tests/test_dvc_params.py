"""Each stage reads exactly the params its dvc.yaml entry declares.

DVC reruns a stage when a param it declares changes, and only then: a param a
stage reads but does not declare would leave a stale result after a change
(the worst kind of wrong), a declared param it never reads reruns it for
nothing. Each stage's ``main`` runs on params that record every value read;
the stage's work function (the one call that does the work, with every param
already evaluated as its arguments) is replaced by a stop, so nothing runs.
``paths.*`` are exempt: they name deps and outs, which dvc.yaml declares as such.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from catsdogs.core.params import validate_params

ROOT = Path(__file__).resolve().parents[1]
DECLARED = {name: stage.get("params", []) for name, stage in
            yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items()}
WORK = {  # the call in each stage's main that does the work
    "download": "build_raw", "split": "split_dataset", "train_scratch": "train_scratch", "weights": "prepare_weights",
    "extract_features": "extract_features", "train_top": "train_top", "finetune": "finetune", "evaluate": "evaluate",
    "reports": "build_reports", "submission": "make_submission",
}


class Stop(Exception):
    """Raised instead of the stage's work."""


class Recorder:
    """A read-only view of a params model that records the dotted key of every value read."""

    def __init__(self, model: BaseModel, prefix: str, read: set[str]) -> None:
        self._model, self._prefix, self._read = model, prefix, read

    def _key(self, name: str) -> str:
        return f"{self._prefix}.{name}" if self._prefix else name

    def __getattr__(self, name: str):
        value = getattr(self._model, name)
        if isinstance(value, BaseModel):
            return Recorder(value, self._key(name), self._read)
        if name == "model_dump":
            def dump(*args, include=None, **kwargs):
                self._read.update([self._key(key) for key in include] if include else [self._prefix or "<all>"])
                return value(*args, include=include, **kwargs)
            return dump
        if not callable(value):
            self._read.add(self._key(name))
        return value


def params_read(stage: str, monkeypatch, tmp_path: Path) -> set[str]:
    """The params keys (paths included) the stage's main reads before its work starts (run in an empty folder)."""
    module = importlib.import_module(f"stages.{stage}")
    read: set[str] = set()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(module, "load_params", lambda *args: Recorder(validate_params({}), "", read))

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(module, WORK[stage], stop)
    with pytest.raises(Stop):
        module.main()
    return read


def covers(outer: str, inner: str) -> bool:
    """Whether the params key ``outer`` (a section or a value) includes ``inner``."""
    return inner == outer or inner.startswith(outer + ".")


@pytest.mark.parametrize("stage", sorted(DECLARED))
def test_a_stage_reads_exactly_the_params_it_declares(stage: str, monkeypatch, tmp_path: Path) -> None:
    read, declared = params_read(stage, monkeypatch, tmp_path), DECLARED[stage]
    assert read, "the recorder saw no param read: the test would pass whatever dvc.yaml says"
    undeclared = sorted(key for key in read
                        if not key.startswith("paths.") and not any(covers(entry, key) for entry in declared))
    unread = sorted(entry for entry in declared
                    if not any(covers(entry, key) or covers(key, entry) for key in read))
    assert undeclared == [], f"{stage} reads params that dvc.yaml does not declare: a change would not rerun it"
    assert unread == [], f"{stage} declares params it never reads: a change reruns it for nothing"


def test_the_recorder_sees_values_sections_and_picked_keys() -> None:
    read: set[str] = set()
    params = Recorder(validate_params({}), "", read)
    params.common.seed
    params.train_top.model_dump()
    params.download.model_dump(include={"source"})
    params.paths.model_files()  # a method, not a value
    assert read == {"common.seed", "train_top", "download.source"}


def test_the_summary_shows_the_params_reports_reads() -> None:
    """reports reads only the summary's params: whole sections, and download's source alone."""
    from catsdogs.report.summary import read_summary_params

    params = validate_params({"download": {"source": "synthetic"}, "train_top": {"epochs": 7}})
    full, selected = params.model_dump(mode="json"), read_summary_params(params)
    assert list(selected) == ["common", "download", "split", "train_scratch", "extract_features", "train_top",
                              "finetune", "evaluate"]
    assert selected["download"] == {"source": "synthetic"}
    assert all(selected[section] == full[section] for section in selected if section != "download")
    assert selected["train_top"]["epochs"] == 7


# --- The value a stage uses is the value DVC records ---

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
