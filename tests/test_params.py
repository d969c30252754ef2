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
        ({"split": {"ratio": 0}}, ["split.ratio:", "more than 0 and less than 1", "got 0"]),
        ({"split": {"ratio": 1}}, ["split.ratio:", "less than 1", "got 1"]),
        ({"split": {"ratio": 1.5}}, ["split.ratio:", "less than 1", "got 1.5"]),
        ({"split": {"n": -5}}, ["split.n:", "at least 1", "got -5"]),
        ({"split": {"n": 0}}, ["split.n:", "at least 1"]),
        ({"split": {"min_side": 0}}, ["split.min_side:", "at least 1"]),
        ({"common": {"image_size": 8}}, ["common.image_size:", "at least 32 and at most 1024"]),
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


# One invalid value per family of params, and the whole message it must give (after "invalid params:").
INVALID_BY_FAMILY = [
    ("unknown key", {"train_top": {"unit": [8]}},
     "train_top.unit: unknown key (check the spelling; see params.yaml in the repository for the keys)"),
    ("wrong type", {"common": {"batch_size": "32"}}, "common.batch_size: Input should be a valid integer (got '32')"),
    ("non-finite rate", {"train_scratch": {"learning_rate": float("inf")}},
     "train_scratch.learning_rate: Input should be a finite number (got inf)"),
    ("non-finite optional", {"train_scratch": {"decay": float("nan")}},
     "train_scratch.decay: Input should be a finite number (got nan)"),
    ("non-finite timeout", {"download": {"timeout_s": float("-inf")}},
     "download.timeout_s: Input should be a finite number (got -inf)"),
    ("non-finite limit", {"download": {"limits": {"max_ratio": float("inf")}}},
     "download.limits.max_ratio: Input should be a finite number (got inf)"),
    ("probability", {"train_top": {"dropouts": [0.5, 1.0]}}, "train_top.dropouts.1: got 1.0; allowed: at least 0 and less than 1"),
    ("ratio", {"split": {"ratio": 1.5}}, "split.ratio: got 1.5; allowed: more than 0 and less than 1"),
    ("clip", {"evaluate": {"clip": 0.5}}, "evaluate.clip: got 0.5; allowed: more than 0 and less than 0.5"),
    ("batch size", {"common": {"batch_size": 1_000_000_000_000}},
     "common.batch_size: got 1000000000000; allowed: at least 1 and at most 4096"),
    ("layer width", {"train_scratch": {"filters": [32, 1_000_000_000]}},
     "train_scratch.filters.1: got 1000000000; allowed: at least 1 and at most 4096"),
    ("dense width", {"train_top": {"units": [100_000], "dropouts": [0.5]}},
     "train_top.units.0: got 100000; allowed: at least 1 and at most 8192"),
    ("layer count", {"train_scratch": {"filters": [8] * 11}},
     "train_scratch.filters: List should have at most 10 items after validation, not 11 (got [8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8])"),
    ("epochs", {"finetune": {"epochs": 1_000_000}}, "finetune.epochs: got 1000000; allowed: at least 0 and at most 10000"),
    ("image size", {"common": {"image_size": 100_000}}, "common.image_size: got 100000; allowed: at least 32 and at most 1024"),
    ("pixels", {"split": {"max_pixels": 10**12}}, "split.max_pixels: got 1000000000000; allowed: at least 1 and at most 500000000"),
    ("image count", {"split": {"n": 0}}, "split.n: got 0; allowed: at least 1 and at most 10000000"),
    ("archive bytes", {"download": {"limits": {"max_total_bytes": 2**50}}},
     "download.limits.max_total_bytes: got 1125899906842624; allowed: at least 1 and at most 1099511627776"),
    ("seed", {"common": {"seed": -1}}, "common.seed: got -1; allowed: at least 0 and at most 4294967295"),
    ("choice", {"train_scratch": {"cache": "disk"}}, "train_scratch.cache: got 'disk'; allowed: 'memory' or 'none'"),
    ("missing location", {"download": {"source": "archive"}},
     "download: download.source is 'archive' but download.archive is empty: set download.archive to the archive to read"),
    ("url variable", {"download": {"source": "url", "url_env": "https://example.com/a.zip?sig=1"}},
     "download.url_env: must be the name of an environment variable (letters, digits, _; not the URL itself), or empty"),
    ("url twice", {"download": {"source": "url", "url": "https://example.com/a.zip", "url_env": "DATA_URL"}},
     "download: download.url and download.url_env are both set: give the URL one way"),
    ("cross-field", {"train_top": {"units": [8, 4], "dropouts": [0.5]}},
     "train_top: train_top.dropouts has 1 values but train_top.units has 2: give one dropout per dense layer"),
]


@pytest.mark.parametrize(("family", "params", "message"), INVALID_BY_FAMILY, ids=[row[0] for row in INVALID_BY_FAMILY])
def test_one_invalid_value_per_family_gives_its_message(tmp_path: Path, family: str, params: dict, message: str) -> None:
    path = write(tmp_path, params)  # through YAML: .inf, .nan and -.inf as a user would write them
    with pytest.raises(ValueError) as caught:
        load_params(path)
    assert str(caught.value) == f"invalid params:\n  {message}"


def test_the_largest_allowed_sizes_pass(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, {
        "common": {"batch_size": 4096, "seed": 2**32 - 1},
        "train_scratch": {"filters": [4096] * 10, "epochs": 10_000},
        "split": {"max_pixels": 500_000_000},
    }))
    assert params.common.batch_size == 4096 and len(params.train_scratch.filters) == 10


def test_a_signed_url_can_be_named_by_an_environment_variable(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, {"download": {"source": "url", "url_env": "CATSDOGS_DATA_URL"}}))
    assert (params.download.url, params.download.url_env) == ("", "CATSDOGS_DATA_URL")


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
