"""params.yaml, generated from the schema: ``python -m catsdogs.params_file`` (``make params``) writes it,
``--check`` says whether the file is what the schema gives.

The schema (:mod:`catsdogs.core.params` and each recipe's ``Config`` in
:mod:`catsdogs.models.recipes`) is the one place a default is written; this renders
it with each key's meaning as a comment, in the schema's order. A test keeps the
shipped params.yaml equal to it; on your own branch, change params.yaml freely
(``dvc exp run -S key=value`` does) and the schema's defaults stay what they are.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import BaseModel
from ruamel.yaml import YAML

from catsdogs.core.params import DEFAULT_PARAMS_FILE, Params
from catsdogs.models.recipes import default_configs

COMMENT_COLUMN = 24
HEADER = """\
# Every tunable and every path of the pipeline, grouped by concept. Generated from the schema
# (catsdogs/core/params.py; the recipes in catsdogs/models/recipes/): change a default there and run
# `make params`. Change a value for one run with `dvc exp run -S key=value`, or edit this file on
# your branch. dvc.yaml declares, per stage, the keys it reads, so only stages whose inputs changed rerun.
"""


def scalar(value) -> str:
    """``value`` as a YAML 1.2 scalar or flow list that reads back as exactly this value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(scalar(item) for item in value) + "]"
    text = str(value)
    if text and YAML(typ="safe").load(f"key: {text}") == {"key": text}:
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def line(indent: int, key: str, value: str, comment: str | None) -> str:
    text = f"{'  ' * indent}{key}:{' ' + value if value else ''}"
    if comment:
        text = text.ljust(COMMENT_COLUMN - 1) + f" # {comment}"
    return text


def section_lines(model: BaseModel, indent: int) -> list[str]:
    """The keys of one section (nested sections as blocks), each with its description as a comment."""
    lines = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            lines.append(line(indent, name, "", field.description))
            lines.extend(section_lines(value, indent + 1))
        else:
            lines.append(line(indent, name, scalar(value), field.description))
    return lines


def first_sentence(text: str | None) -> str:
    return " ".join((text or "").split()).split(". ")[0].rstrip(".")


def render(defaults: Params | None = None) -> str:
    """The whole params.yaml the schema gives (``defaults``: other values than the schema's, for tests)."""
    defaults = Params() if defaults is None else defaults
    blocks = []
    for name, field in Params.model_fields.items():
        if name == "recipes":
            lines = [line(0, name, "", field.description)]
            configs = default_configs()  # the default recipe first
            for recipe in sorted(configs, key=lambda recipe: recipe != defaults.train_scratch.recipe):
                config = configs[recipe]
                lines.append(line(1, recipe, "", first_sentence(type(config).__doc__)))
                lines.extend(section_lines(config, 2))
        else:
            section = getattr(defaults, name)
            lines = [line(0, name, "", first_sentence(type(section).__doc__))]
            lines.extend(section_lines(section, 1))
        blocks.append("\n".join(lines))
    return HEADER + "\n" + "\n\n".join(blocks) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m catsdogs.params_file", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file differs from what the schema gives")
    parser.add_argument("--file", default=DEFAULT_PARAMS_FILE, help="the params file (default: params.yaml)")
    arguments = parser.parse_args(argv)
    text, path = render(), Path(arguments.file)
    if arguments.check:
        same = path.is_file() and path.read_text(encoding="utf-8") == text
        print(f"{path}: {'as the schema gives' if same else 'differs from the schema: run make params'}")
        return 0 if same else 1
    path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
