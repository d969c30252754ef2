"""The one validating params loader (catsdogs/core/params.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from catsdogs.core.params import MOVED_KEYS, Params, load_params, validate_params
from catsdogs.models.recipes import default_configs, load_recipe, recipe_names
from tests.conftest import ROOT


def write(tmp_path: Path, params: dict) -> Path:
    """Write a params file holding ``params`` (merged with nothing: missing keys take defaults)."""
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_params_yaml_is_what_the_schema_generates() -> None:
    """The schema is the one place a default is written; params.yaml is generated from it (make params)."""
    from catsdogs.params_file import render

    assert (ROOT / "params.yaml").read_text() == render(), "params.yaml differs from the schema: run make params"


def test_params_yaml_spells_out_every_key_with_the_schema_defaults() -> None:
    # Every default is written in params.yaml, so it documents every tunable, every recipe included.
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    expected = Params().model_dump() | {"recipes": {name: config.model_dump() for name, config in default_configs().items()}}
    assert raw == expected
    assert load_params(ROOT / "params.yaml").model_dump(exclude={"recipes"}) == Params().model_dump(exclude={"recipes"})
    assert sorted(raw["recipes"]) == recipe_names() == ["large", "modern", "tutorial"]


def test_the_generated_file_reads_back_as_the_values_it_was_made_from() -> None:
    from catsdogs.core.params_yaml import parse_params
    from catsdogs.params_file import render

    values = validate_params({"split": {"ratio": 0.3, "n": 7}, "download": {"url": "https://x.test/a b.zip"},
                              "train_top": {"learning_rate": 1e-05}})
    text = render(values)
    assert "  ratio: 0.3            # validation share, as in the tutorial\n" in text
    assert validate_params(parse_params(text)).model_dump(exclude={"recipes"}) == values.model_dump(exclude={"recipes"})


def test_an_old_params_file_names_each_moved_key_and_its_new_place(tmp_path: Path) -> None:
    old = {"common": {"seed": 1, "deterministic": True}, "extract_features": {"weights": "none"},
           "train_scratch": {"recipe": "modern", "epochs": 5, "modern": {"epochs": 3}},
           "evaluate": {"tta": True}, "split": {"max_pixels": 1000}}
    with pytest.raises(ValueError) as caught:
        load_params(write(tmp_path, old))
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("params in the layout before catsdogs 1.0 (the repository's params.yaml shows the new one")
    assert sorted(line.strip().split(":")[0] for line in lines[1:]) == sorted([
        "common.deterministic", "extract_features.weights", "train_scratch.epochs", "train_scratch.modern",
        "evaluate.tta", "split.max_pixels"])
    assert "\n  common.deterministic: moved to runtime.deterministic\n" in str(caught.value)
    assert "  train_scratch.epochs: moved to recipes.tutorial.epochs" in str(caught.value)
    for new in MOVED_KEYS.values():  # every new place exists in the schema or a recipe
        section, _, key = new.partition(".")
        if section == "recipes":
            recipe, _, key = key.partition(".")
            assert key == "" or key in default_configs()[recipe].model_dump(), new
        else:
            assert key in Params.model_fields[section].annotation.model_fields, new


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
        ({"runtime": {"deterministic": "yes"}}, ["runtime.deterministic:", "valid boolean"]),
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
    ("non-finite timeout", {"download": {"timeout_s": float("-inf")}},
     "download.timeout_s: Input should be a finite number (got -inf)"),
    ("non-finite limit", {"download": {"limits": {"max_ratio": float("inf")}}},
     "download.limits.max_ratio: Input should be a finite number (got inf)"),
    ("probability", {"train_top": {"dropouts": [0.5, 1.0]}}, "train_top.dropouts.1: got 1.0; allowed: at least 0 and less than 1"),
    ("ratio", {"split": {"ratio": 1.5}}, "split.ratio: got 1.5; allowed: more than 0 and less than 1"),
    ("clip", {"prediction": {"clip": 0.5}}, "prediction.clip: got 0.5; allowed: more than 0 and less than 0.5"),
    ("batch size", {"common": {"batch_size": 1_000_000_000_000}},
     "common.batch_size: got 1000000000000; allowed: at least 1 and at most 4096"),
    ("dense width", {"train_top": {"units": [100_000], "dropouts": [0.5]}},
     "train_top.units.0: got 100000; allowed: at least 1 and at most 8192"),
    ("epochs", {"finetune": {"epochs": 1_000_000}}, "finetune.epochs: got 1000000; allowed: at least 0 and at most 10000"),
    ("image size", {"common": {"image_size": 100_000}}, "common.image_size: got 100000; allowed: at least 32 and at most 1024"),
    ("pixels", {"images": {"max_pixels": 10**12}}, "images.max_pixels: got 1000000000000; allowed: at least 1 and at most 500000000"),
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


# The same for a recipe's section, validated by its recipe when train_scratch loads it.
INVALID_RECIPE_VALUES = [
    ("non-finite rate", "tutorial", {"learning_rate": float("inf")},
     "recipes.tutorial.learning_rate: Input should be a finite number (got inf)"),
    ("non-finite optional", "tutorial", {"decay": float("nan")},
     "recipes.tutorial.decay: Input should be a finite number (got nan)"),
    ("layer width", "tutorial", {"filters": [32, 1_000_000_000]},
     "recipes.tutorial.filters.1: got 1000000000; allowed: at least 1 and at most 4096"),
    ("layer count", "modern", {"filters": [8] * 11},
     "recipes.modern.filters: List should have at most 10 items after validation, not 11 (got [8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8])"),
    ("unknown key", "modern", {"epoch": 3},
     "recipes.modern.epoch: unknown key (check the spelling; see params.yaml in the repository for the keys)"),
    ("stages and block counts", "large", {"filters": [8, 16], "blocks": [1]},
     "recipes.large.blocks: 1 block counts for 2 stages (filters): give one per stage"),
    ("block count", "large", {"blocks": [1, 1, 0, 1]},
     "recipes.large.blocks.2: got 0; allowed: at least 1 and at most 10"),
]


@pytest.mark.parametrize(("family", "recipe", "values", "message"), INVALID_RECIPE_VALUES,
                         ids=[row[0] for row in INVALID_RECIPE_VALUES])
def test_a_recipe_section_names_its_bad_key(tmp_path: Path, family: str, recipe: str, values: dict, message: str) -> None:
    params = load_params(write(tmp_path, {"train_scratch": {"recipe": recipe}, "recipes": {recipe: values}}))
    with pytest.raises(ValueError) as caught:
        load_recipe(params.train_scratch.recipe, params.recipes)
    assert str(caught.value) == f"invalid params:\n  {message}"


def test_an_unknown_recipe_names_the_recipes_there_are(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, {"train_scratch": {"recipe": "resnet"}}))
    with pytest.raises(ValueError, match=r"train_scratch.recipe is 'resnet': no such recipe \(there are: large, modern, tutorial\)"):
        load_recipe(params.train_scratch.recipe, params.recipes)


def test_a_recipe_without_a_section_takes_its_defaults() -> None:
    recipe = load_recipe("modern", {})
    assert recipe.config == default_configs()["modern"] and recipe.stopping().epochs == recipe.config.epochs


def test_the_largest_allowed_sizes_pass(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, {
        "common": {"batch_size": 4096, "seed": 2**32 - 1},
        "recipes": {"tutorial": {"filters": [4096] * 10, "epochs": 10_000}},
        "images": {"max_pixels": 500_000_000},
    }))
    recipe = load_recipe("tutorial", params.recipes)
    assert params.common.batch_size == 4096 and len(recipe.config.filters) == 10


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


# --- params.yaml is read as DVC reads it (YAML 1.2, ruamel.yaml), hostile input is one short line ---

def write_text(tmp_path: Path, text: str) -> Path:
    """Write ``text`` as a params file, byte for byte (YAML a dict dump would quote or normalize)."""
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def refusal(path: Path) -> str:
    """The message load_params refuses ``path`` with."""
    with pytest.raises(ValueError) as caught:
        load_params(path)
    return str(caught.value)


# Documents where YAML 1.1 (PyYAML) and YAML 1.2 (ruamel.yaml, DVC) disagree, or that are otherwise tricky:
# the stages must read each exactly as DVC does.
READ_AS_DVC_READS = [
    "",
    "# only a comment\n",
    "common:\n  seed: 1:20\n",
    "a: 12:30:45\nb: -1:20\n",
    "common:\n  deterministic: yes\n  fail_at_chance: on\n",
    "a: [y, n, Y, N, yes, no, Yes, NO, on, off, On, OFF, true, false, True, FALSE]\n",
    "a: 0o17\nb: 0x1f\nc: 0b11\nd: 1_000\ne: +12\nf: -0\n",
    "a: 1e3\nb: .5\nc: 0.\nd: 1.5e+3\ne: 2e-1\nf: 1_0.5\ng: 017.5\n",
    "a: .inf\nb: -.Inf\nc: .NaN\n",
    "a: ~\nb: null\nc: Null\nd:\n",
    "a: 2020-01-01\nb: '2020-01-01'\n",
    "a: 'quoted'\nb: \"017\"\nc: !!str 12\nd: !!float 1\ne: '1:20'\n",
    "base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\n",
    "a: &s 1\nb: *s\nc: [*s, *s]\n",
    "a: |\n  two\n  lines\nb: >\n  folded\n  text\n",
    "? a\n: b\n",
    "split:\n  ratio: 0.25\n  n: 100\ntrain_top:\n  units: [8, 4]\n  dropouts: [0.5, 0.2]\n",
]


@pytest.mark.parametrize("document", READ_AS_DVC_READS)
def test_the_stages_read_params_exactly_as_dvc_does(document: str) -> None:
    """A future DVC (or ruamel.yaml) that reads params differently fails this, not a silent run."""
    from dvc.utils.serialize import parse_yaml

    from catsdogs.core import params as loader

    parse = getattr(loader, "parse_params", None)
    assert parse is not None, "catsdogs.core.params has no parse_params: the stages read params with their own YAML"
    ours, dvc = parse(document), parse_yaml(document, "params.yaml")
    assert repr(ours) == repr(dvc)  # repr: nan == nan, and 1, 1.0 and True differ


# Documents DVC refuses too: the stages refuse them with one line.
REFUSED_BY_DVC_TOO = [
    ("common:\n  seed: 1\ncommon:\n  seed: 2\n", ["'common'", "lines 1 and 3"]),
    ("split:\n  ratio: 0.2\n  n: 5\n  ratio: 0.3\n", ["split.ratio", "lines 2 and 4"]),
    ("train_top: {units: [8], units: [4]}\n", ["train_top.units"]),
    ("common:\n  seed: =\n", ["not valid YAML"]),
    ("split:\n  ratio: [0.2\n", ["not valid YAML"]),
]


@pytest.mark.parametrize(("document", "fragments"), REFUSED_BY_DVC_TOO)
def test_what_dvc_refuses_the_stages_refuse_in_one_line(tmp_path: Path, document: str, fragments: list[str]) -> None:
    from dvc.utils.serialize import parse_yaml

    with pytest.raises(Exception):
        parse_yaml(document, "params.yaml")
    message = refusal(write_text(tmp_path, document))
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_a_duplicated_section_is_refused_not_last_wins(tmp_path: Path) -> None:
    message = refusal(write_text(tmp_path, "common:\n  seed: 2\nsplit:\n  ratio: 0.3\ncommon:\n  batch_size: 16\n"))
    assert message == f"{tmp_path / 'params.yaml'}: key 'common' appears twice (lines 1 and 5): keep one"


@pytest.mark.parametrize(
    ("document", "fragments"),
    [
        # YAML 1.1 tools read 80 (base 60); YAML 1.2 (DVC, the stages) the string '1:20'.
        ("common:\n  seed: 1:20\n", ["common.seed:", "valid integer", "'1:20'", "base 60", "80", "write"]),
        # YAML 1.1 tools read booleans; YAML 1.2 strings.
        ("runtime:\n  deterministic: yes\n", ["runtime.deterministic:", "valid boolean", "'yes'", "write true or false"]),
        ("prediction:\n  tta: on\n", ["prediction.tta:", "'on'", "write true or false"]),
        ("runtime:\n  mixed_precision: off\n", ["runtime.mixed_precision:", "'off'", "write true or false"]),
    ],
)
def test_values_yaml_1_1_reads_differently_say_what_to_write(tmp_path: Path, document: str, fragments: list[str]) -> None:
    message = refusal(write_text(tmp_path, document))
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


@pytest.mark.parametrize(("written", "meant"), [("017", "17"), ("-017", "-17"), ("08", "8"), ("0_17", "17"), ("00", "0")])
def test_a_leading_zero_integer_is_refused_naming_the_key_and_what_to_write(
    tmp_path: Path, written: str, meant: str
) -> None:
    """017: 17 for DVC (YAML 1.2), 15 for YAML 1.1 tools; no silent choice between them."""
    message = refusal(write_text(tmp_path, f"common:\n  seed: {written}\n"))
    assert "\n" not in message, message
    assert "common.seed" in message and "line 2" in message and f"write {meant}" in message


def alias_bomb(levels: int) -> str:
    """A params file whose ``common.seed`` expands to 10**levels strings through nested aliases."""
    lines = ["bomb:", "  - &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels):
        lines.append(f"  - &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    return "\n".join(lines) + f"\ncommon:\n  seed: *a{levels - 1}\n"


@pytest.mark.parametrize("levels", [6, 9])
def test_an_alias_bomb_is_refused_fast_small_and_in_one_line(tmp_path: Path, levels: int) -> None:
    import time
    import tracemalloc

    path = write_text(tmp_path, alias_bomb(levels))
    tracemalloc.start()
    started = time.monotonic()
    try:
        message = refusal(path)
        seconds, (_, peak) = time.monotonic() - started, tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(message) < 400 and "\n" not in message, f"{len(message)} characters: {message[:400]!r}"
    assert "aliases" in message
    assert seconds < 10 and peak < 50 * 2**20, (seconds, peak)


@pytest.mark.parametrize(
    ("section", "key"), [("download", "source"), ("paths", "features"), ("common", "seed"), ("train_top", "units")]
)
def test_a_huge_value_is_cut_short_in_the_message(tmp_path: Path, section: str, key: str) -> None:
    value = {"units": list(range(5000)), "features": "/" + "x" * 100_000}.get(key, "x" * 100_000)
    message = refusal(write(tmp_path, {section: {key: value}}))
    assert f"{section}.{key}" in message
    assert len(message) < 600, f"{len(message)} characters: {message[:600]!r}"
    assert "characters)" in message


def test_a_params_file_over_the_size_cap_is_refused_in_one_line(tmp_path: Path) -> None:
    path = write_text(tmp_path, "common:\n  seed: 1\n" + "# padding\n" * 200_000)
    message = refusal(path)
    assert "\n" not in message and "MiB" in message and str(path) in message, message


def test_a_deeply_nested_value_is_refused_in_one_line(tmp_path: Path) -> None:
    message = refusal(write_text(tmp_path, "common:\n  seed: " + "[" * 5000 + "]" * 5000 + "\n"))
    assert "\n" not in message and len(message) < 400, message[:400]


def test_thousands_of_bad_keys_are_listed_up_to_a_cap_then_counted(tmp_path: Path) -> None:
    """A file far under the size cap can hold thousands of unknown keys: the message lists the first few
    and counts the rest instead of growing a line per key."""
    message = refusal(write_text(tmp_path, "common:\n" + "".join(f"  k{i}: 1\n" for i in range(5000))))
    lines = message.splitlines()
    assert len(message) < 10_000, f"{len(lines)} lines, {len(message)} characters: {message[:300]!r}"
    assert lines[0] == "invalid params:" and lines[1].startswith("  common.k0: unknown key")
    assert lines[-1].strip().startswith("…") and "more" in lines[-1]
    assert str(5000 - (len(lines) - 2)) in lines[-1], lines[-1]
