"""Pydantic's validation errors as one line per bad key: the dotted key, what is wrong, what is allowed.

For a number out of range the line gives the whole allowed range, read from the
field's constraints (``Annotated[int, Field(ge=1, le=4096)]`` -> "at least 1 and
at most 4096").
"""

from __future__ import annotations

import re
import types
from typing import Annotated, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

# How much of a value a message echoes: enough to recognise it, never a multi-megabyte line.
MAX_SHOWN = 80
MAX_LINE = 400  # a whole line, a backstop for messages that echo a value themselves
# Errors one message lists: a small file can hold thousands of bad keys; the rest are counted.
MAX_LINES = 20
# Plain scalars YAML 1.1 tools (PyYAML) read differently from YAML 1.2 (ruamel.yaml: DVC and the stages).
_BOOLEAN_WORDS_1_1 = frozenset({"y", "n", "yes", "no", "on", "off"})
_SEXAGESIMAL_1_1 = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")


def shorten(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` whole when it has at most ``limit`` characters, else its first ``limit`` and "… (N characters)"."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def shown(value: object) -> str:
    """``repr(value)``, cut short by :func:`shorten`."""
    return shorten(repr(value))


def describe_errors(errors: list[dict], model: type[BaseModel]) -> list[str]:
    """One line per error of ``model.model_validate`` (repeated lines once, in order), each at most
    about :data:`MAX_LINE` characters, every echoed value cut to :data:`MAX_SHOWN`; past
    :data:`MAX_LINES` lines, the first ones and a last line counting the rest."""
    lines = list(dict.fromkeys(shorten(_describe(item, model), MAX_LINE) for item in _merge_union_errors(errors)))
    if len(lines) > MAX_LINES:
        lines = [*lines[:MAX_LINES], f"… and {len(lines) - MAX_LINES} more"]
    return lines


def yaml_1_1_hint(value: object, expected: str) -> str:
    """What to write instead of a string YAML 1.1 tools read as a boolean (``expected``: "bool") or a
    base-60 number ("number"), as "; ..." ; "" for any other value."""
    if not isinstance(value, str):
        return ""
    if expected == "bool" and value.lower() in _BOOLEAN_WORDS_1_1:
        return (f"; {value!r} is a string in YAML 1.2, which DVC and the stages read "
                "(YAML 1.1 tools read a boolean): write true or false")
    if expected == "number" and _SEXAGESIMAL_1_1.match(value):
        sign = -1 if value.startswith("-") else 1
        whole, _, fraction = value.lstrip("+-").replace("_", "").partition(".")
        number = 0
        for part in whole.split(":"):
            number = number * 60 + int(part)
        base_60 = sign * (number + float(f"0.{fraction}")) if fraction else sign * number
        return (f"; {value!r} is a string in YAML 1.2, which DVC and the stages read (YAML 1.1 tools read "
                f"{base_60}, base 60): write the number itself, e.g. {base_60}")
    return ""


_BOUND_WORDS = {annotated_types.Ge: "at least", annotated_types.Gt: "more than",
                annotated_types.Le: "at most", annotated_types.Lt: "less than"}


def _constraints(annotation) -> tuple[object, list]:
    """The type inside ``Annotated[...]`` / ``X | None`` and the constraint objects on the way."""
    found: list = []
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation, *extras = get_args(annotation)
            for extra in extras:
                found.extend(extra.metadata if isinstance(extra, FieldInfo) else [extra])
        elif origin in (Union, types.UnionType):
            options = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(options) != 1:
                return annotation, found
            annotation = options[0]
        else:
            return annotation, found


def allowed_range(model: type[BaseModel], location: tuple) -> str | None:
    """The whole allowed range of the number at ``location`` (a pydantic error's loc in ``model``), in words."""
    annotation, constraints = model, []
    for part in location:
        if isinstance(part, int):  # an item of a list
            if get_origin(annotation) is not list:
                return None
            annotation, constraints = _constraints(get_args(annotation)[0])
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel) and part in annotation.model_fields:
            field = annotation.model_fields[part]
            annotation, constraints = _constraints(field.annotation)
            constraints = [*field.metadata, *constraints]
        else:
            return None
    words = []
    for item in constraints:
        if type(item) not in _BOUND_WORDS:
            continue
        value = next(getattr(item, name) for name in ("ge", "gt", "le", "lt") if hasattr(item, name))
        if annotation is int and isinstance(item, annotated_types.Gt):
            words.append(f"at least {value + 1}")  # "more than 0" for a whole number reads better as this
        elif annotation is int and isinstance(item, annotated_types.Lt):
            words.append(f"at most {value - 1}")
        else:
            words.append(f"{_BOUND_WORDS[type(item)]} {value}")
    return " and ".join(words) or None


def _describe(error: dict, model: type[BaseModel]) -> str:
    """One line per pydantic error: the dotted key, then what is wrong and allowed."""
    key = ".".join(str(part) for part in error["loc"]) or "params"
    message = error["msg"]
    bound = error["type"] in ("greater_than", "greater_than_equal", "less_than", "less_than_equal")
    allowed = allowed_range(model, tuple(error["loc"])) if bound else None
    value = error.get("input")
    if allowed:
        message = f"got {shown(value)}; allowed: {allowed}"
    elif error["type"] == "extra_forbidden":
        message = "unknown key (check the spelling; see params.yaml in the repository for the keys)"
    elif error["type"] == "literal_error":
        allowed = error.get("ctx", {}).get("expected", "")
        message = f"got {shown(value)}; allowed: {allowed}"
    elif error["type"] == "union_error":
        message = f"got {shown(value)}; allowed: true, false or 'auto'" + yaml_1_1_hint(value, "bool")
    elif error["type"].startswith("value_error"):
        message = message.removeprefix("Value error, ")
    else:
        expected = {"bool_type": "bool", "int_type": "number", "float_type": "number"}.get(error["type"], "")
        message = f"{message} (got {shown(value)})" + yaml_1_1_hint(value, expected)
    return f"{key}: {message}"


def _merge_union_errors(errors: list[dict]) -> list[dict]:
    """One error for a value that fits no member of a union (pydantic reports one per member)."""
    merged = []
    for error in errors:
        member = str(error["loc"][-1]) if error["loc"] else ""
        if member in ("bool", "int", "float", "str") or member.startswith("literal["):
            error = {**error, "loc": error["loc"][:-1], "type": "union_error"}
        merged.append(error)
    return merged
