"""The one validating params loader (stages/lib/params.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from stages.lib.params import Params, load_params, validate_params
from tests.conftest import ROOT


def write(tmp_path: Path, params: dict) -> Path:
    """Write a params file holding ``params`` (merged with nothing: missing keys take defaults)."""
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_params_yaml_equals_the_schema_defaults() -> None:
    assert load_params(ROOT / "params.yaml") == Params()


def test_params_yaml_spells_out_every_key() -> None:
    # Every default is written in params.yaml, so it documents every tunable.
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert raw == Params().model_dump()


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("")
    assert load_params(path) == Params()


def test_a_partial_file_keeps_the_other_defaults(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, {"split": {"ratio": 0.25, "n": 100}, "common": {"seed": 7}}))
    assert (params.split.ratio, params.split.n, params.common.seed) == (0.25, 100, 7)
    assert params.split.min_side == Params().split.min_side
    assert params.train_top == Params().train_top


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # unknown keys, at the top level and inside a section
        ({"splitt": {}}, ["splitt: unknown key"]),
        ({"split": {"ratios": 0.2}}, ["split.ratios: unknown key"]),
        # wrong types (strict: no "42" -> 42, no 1.0 -> int, no "yes" -> bool)
        ({"common": {"seed": "42"}}, ["common.seed:", "valid integer", "'42'"]),
        ({"split": {"n": 10.0}}, ["split.n:", "10.0"]),
        ({"common": {"deterministic": "yes"}}, ["common.deterministic:", "valid boolean"]),
        ({"train_top": {"units": 512}}, ["train_top.units:", "valid list"]),
        # out of range
        ({"split": {"ratio": 0}}, ["split.ratio:", "greater than 0", "got 0"]),
        ({"split": {"ratio": 1}}, ["split.ratio:", "less than 1", "got 1"]),
        ({"split": {"ratio": 1.5}}, ["split.ratio:", "less than 1", "got 1.5"]),
        ({"split": {"n": -5}}, ["split.n:", "greater than 0", "got -5"]),
        ({"split": {"n": 0}}, ["split.n:", "greater than 0"]),
        ({"split": {"min_side": 0}}, ["split.min_side:", "greater than 0"]),
        ({"common": {"image_size": 8}}, ["common.image_size:", "greater than or equal to 32"]),
        # choices
        ({"download": {"source": "ftp"}}, ["download.source:", "got 'ftp'", "'kaggle'", "'synthetic'", "'dir'"]),
        ({"train_scratch": {"strategy": "tpu"}}, ["train_scratch.strategy:", "'mirrored'"]),
        # a source without its location
        ({"download": {"source": "dir"}}, ["download.source is 'dir' but download.dir is empty"]),
        ({"download": {"source": "dir", "dir": ""}}, ["set download.dir"]),
        ({"download": {"source": "url"}}, ["download.url is empty"]),
        ({"download": {"source": "archive"}}, ["download.archive is empty"]),
        # cross-field checks
        ({"train_top": {"units": [8, 4], "dropouts": [0.5]}}, ["train_top.dropouts has 1 values"]),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(tmp_path: Path, params: dict, expected: list[str]) -> None:
    with pytest.raises(ValueError) as caught:
        load_params(write(tmp_path, params))
    message = str(caught.value)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_every_bad_key_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as caught:
        load_params(write(tmp_path, {"split": {"ratio": 2, "n": -1}, "common": {"seedd": 1}}))
    message = str(caught.value)
    assert "split.ratio" in message and "split.n" in message and "common.seedd" in message


def test_good_values_on_the_boundaries_pass(tmp_path: Path) -> None:
    params = load_params(
        write(tmp_path, {"split": {"ratio": 0.999, "n": 1}, "download": {"source": "dir", "dir": "/data/train"}})
    )
    assert (params.split.ratio, params.split.n, params.download.dir) == (0.999, 1, "/data/train")
    assert load_params(write(tmp_path, {"split": {"n": None}})).split.n is None


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"params file not found: .*absent\.yaml \(run from the repository root\)"):
        load_params(tmp_path / "absent.yaml")


def test_invalid_yaml_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("split:\n  ratio: [0.2\n")
    with pytest.raises(ValueError, match=r"params\.yaml is not valid YAML"):
        load_params(path)


@pytest.mark.parametrize("document", ["- a\n- b\n", "just a string\n", "42\n"])
def test_a_file_that_is_not_a_mapping_is_a_clear_error(tmp_path: Path, document: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(document)
    with pytest.raises(ValueError, match="params must be a mapping of sections"):
        load_params(path)


def test_a_section_that_is_not_a_mapping_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="split:"):
        validate_params({"split": 0.2})


def test_params_are_immutable() -> None:
    params = Params()
    with pytest.raises(ValidationError, match="frozen"):
        params.split.ratio = 0.5  # type: ignore[misc]
