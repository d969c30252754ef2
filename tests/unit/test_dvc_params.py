"""Each stage reads exactly the params its dvc.yaml entry declares.

DVC reruns a stage when a param it declares changes, and only then: a param a
stage reads but does not declare would leave a stale result after a change
(the worst kind of wrong), a declared param it never reads reruns it for
nothing. Each stage's ``main`` runs on params that record every value read;
the stage's work function (the one call that does the work, with every param
already evaluated as its arguments) is replaced by a stop, so nothing runs.
``paths.*`` are exempt: they name deps and outs, which dvc.yaml declares as such.
A params section passed whole to the work function (a typed config) counts as
read whole; ``${...}`` in a declared key (``recipes.${train_scratch.recipe}``) is
resolved from the shipped params, as DVC resolves it.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from catsdogs.core.params import validate_params

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = yaml.safe_load((ROOT / "params.yaml").read_text())


def resolved(key: str) -> str:
    """A declared params key with its ``${...}`` filled in by DVC's own interpolation."""
    from dvc.parsing.context import Context

    return Context(SHIPPED).resolve(key)


DECLARED = {name: [resolved(key) for key in stage.get("params", [])] for name, stage in
            yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items()}
WORK = {  # the call in each stage's main that does the work
    "download": "build_raw", "split": "split_dataset", "train_scratch": "train_scratch", "weights": "prepare_weights",
    "extract_features": "extract_features", "train_top": "train_top", "finetune": "finetune", "evaluate": "evaluate",
    "reports": "build_reports", "submission": "make_submission",
}


class Stop(Exception):
    """Raised instead of the stage's work."""


class RecordingDict(dict):
    """A read-only mapping (params.yaml's ``recipes``) that records the dotted key of every entry read."""

    def __init__(self, data: dict, prefix: str, read: set[str]) -> None:
        super().__init__(data)
        self._prefix, self._read = prefix, read

    def __getitem__(self, key):
        self._read.add(f"{self._prefix}.{key}")
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._read.add(f"{self._prefix}.{key}")
        return super().get(key, default)


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
        if isinstance(value, dict):
            return RecordingDict(value, self._key(name), self._read)
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
    module = importlib.import_module(f"catsdogs.stages.{stage}")
    read: set[str] = set()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(module, "load_params", lambda *args: Recorder(validate_params(SHIPPED), "", read))

    def stop(*args, **kwargs):
        # A section passed whole (a typed config) is read whole, and so is a recipe (its config).
        for value in [*args, *kwargs.values()]:
            if isinstance(value, Recorder):
                read.add(value._prefix)
            elif hasattr(value, "config") and hasattr(value, "module"):
                read.add(f"recipes.{value.name}")
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
                        if not covers("paths", key) and not any(covers(entry, key) for entry in declared))
    unread = sorted(entry for entry in declared
                    if not any(covers(entry, key) or covers(key, entry) for key in read))
    assert undeclared == [], f"{stage} reads params that dvc.yaml does not declare: a change would not rerun it"
    assert unread == [], f"{stage} declares params it never reads: a change reruns it for nothing"


def test_the_recorder_sees_values_sections_and_picked_keys() -> None:
    read: set[str] = set()
    params = Recorder(validate_params(SHIPPED), "", read)
    params.common.seed
    params.train_top.model_dump()
    params.download.model_dump(include={"source"})
    params.paths.model_files()  # a method, not a value
    params.recipes["modern"]
    assert read == {"common.seed", "train_top", "download.source", "recipes.modern"}


def test_the_summary_shows_the_params_reports_reads() -> None:
    """reports reads only the summary's params: whole sections, download's source alone, the chosen recipe."""
    from catsdogs.report.summary import read_summary_params
    from tests.conftest import merged

    params = validate_params(merged(SHIPPED, {"download": {"source": "synthetic"}, "train_top": {"epochs": 7},
                                              "train_scratch": {"recipe": "modern"}}))
    full, selected = params.model_dump(mode="json"), read_summary_params(params)
    assert list(selected) == ["common", "runtime", "images", "download", "split", "train_scratch", "recipes", "vgg16",
                              "train_top", "finetune", "prediction", "reports"]
    assert selected["download"] == {"source": "synthetic"}
    assert selected["recipes"] == {"modern": full["recipes"]["modern"]}
    assert all(selected[section] == full[section] for section in selected if section not in ("download", "recipes"))
    assert selected["train_top"]["epochs"] == 7


# --- The value a stage uses is the value DVC records ---


