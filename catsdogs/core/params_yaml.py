"""Reading a params file exactly as DVC reads it (ruamel.yaml, YAML 1.2), refusing in one line what DVC
refuses too (a repeated key, invalid YAML) and what YAML 1.1 tools would read differently (an integer with a
leading zero), and alias bombs or files too large to be params."""

from __future__ import annotations

import re

from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

from catsdogs.core.param_errors import shorten

DEFAULT_PARAMS_FILE = "params.yaml"
# Caps on the params file itself, far above any real one (the shipped file: a few KiB, a few hundred values),
# so an alias bomb or a huge file is one line here rather than minutes of work and a multi-megabyte message.
MAX_PARAMS_BYTES = 2**20
MAX_PARAMS_VALUES = 10_000  # nodes once aliases are expanded: what validation and its messages would walk
MAX_PARAMS_DEPTH = 32
_INT_TAG = "tag:yaml.org,2002:int"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# An integer with a leading zero: 17 in YAML 1.2 (DVC, the stages), octal 15 (or a string) for YAML 1.1 tools.
_LEADING_ZERO = re.compile(r"^[-+]?0[0-9_]+$")


def _dotted(key: tuple) -> str:
    return shorten(".".join(str(part) for part in key) or "the document")


def check_yaml_nodes(root, name: str) -> None:
    """Walk a composed YAML document with aliases expanded, stopping at the first problem, so the walk
    costs at most :data:`MAX_PARAMS_VALUES` nodes; ``ValueError`` in one line naming ``name``, the dotted
    key and its line for: more nodes than that cap, nesting deeper than :data:`MAX_PARAMS_DEPTH`, a key
    repeated in one mapping (at any depth), an integer written with a leading zero."""
    if root is None:
        return
    count = 0
    stack = [(root, ())]
    while stack:
        node, key = stack.pop()
        count += 1
        if count > MAX_PARAMS_VALUES:
            raise ValueError(
                f"{name}: more than {MAX_PARAMS_VALUES} values once aliases are expanded (reached at "
                f"{_dotted(key[:3])}): params need no aliases that multiply values; write the values out"
            )
        if len(key) > MAX_PARAMS_DEPTH:
            raise ValueError(f"{name}: {_dotted(key[:3])} is nested more than {MAX_PARAMS_DEPTH} levels deep")
        line = node.start_mark.line + 1
        if isinstance(node, MappingNode):
            seen: dict[tuple, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    stack.append((key_node, (*key, "?")))
                    stack.append((value_node, (*key, "?")))
                    continue
                here = (*key, key_node.value)
                identity, again = (key_node.tag, key_node.value), key_node.start_mark.line + 1
                if key_node.tag != _MERGE_TAG and identity in seen:
                    first = seen[identity]
                    lines = f"lines {first} and {again}" if first != again else f"line {again}"
                    # DVC refuses the file too; last-wins (YAML 1.1 tools) would drop the first silently.
                    raise ValueError(f"{name}: key {_dotted(here)!r} appears twice ({lines}): keep one")
                seen[identity] = again
                stack.append((value_node, here))
        elif isinstance(node, SequenceNode):
            stack.extend((item, (*key, index)) for index, item in reversed(list(enumerate(node.value))))
        elif node.tag == _INT_TAG and _LEADING_ZERO.match(node.value):
            meant = int(node.value.replace("_", ""))
            try:
                old = f"octal {int(node.value.replace('_', ''), 8)}"
            except ValueError:
                old = "a string"
            raise ValueError(
                f"{name}: {_dotted(key)} (line {line}) is {shorten(node.value)}, an integer with a leading zero: "
                f"DVC reads {meant}, YAML 1.1 tools {old}; write {meant}"
            )


def parse_params(text: str, name: str = DEFAULT_PARAMS_FILE) -> object:
    """``text`` read exactly as DVC reads a params file (ruamel.yaml's ``YAML(typ="safe")``: YAML 1.2;
    an empty document is ``{}``), after :func:`check_yaml_nodes`. ``ValueError`` in one line naming
    ``name`` for what DVC refuses too (invalid YAML, a repeated key) and what :func:`check_yaml_nodes` refuses."""
    try:
        check_yaml_nodes(YAML(typ="safe").compose(text), name)
        return YAML(typ="safe").load(text) or {}
    except YAMLError as error:
        raise ValueError(f"{name} is not valid YAML: {shorten(' '.join(str(error).split()), 200)}") from None
    except RecursionError:  # ruamel's composer recurses per nesting level
        raise ValueError(f"{name} is nested too deeply to read") from None
