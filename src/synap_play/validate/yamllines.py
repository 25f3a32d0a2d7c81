"""YAML loaded with the line of every mapping key and sequence item, so each problem can name its line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class Mapping(dict):
    """A YAML mapping that remembers its own line and each key's line."""

    line = 0
    key_lines: dict


class Sequence(list):
    """A YAML sequence that remembers its own line and each item's line."""

    line = 0
    item_lines: list


@dataclass(frozen=True)
class Opaque:
    """A tagged value (!vault, !unsafe, ...): accepted as it is, never type-checked."""

    tag: str


class _LineLoader(yaml.SafeLoader):
    pass


def _mapping(loader, node):
    loader.flatten_mapping(node)
    result = Mapping()
    result.line, result.key_lines = node.start_mark.line + 1, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, list | dict):
            key = str(key)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _sequence(loader, node):
    result = Sequence(loader.construct_object(child, deep=True) for child in node.value)
    result.line, result.item_lines = node.start_mark.line + 1, [child.start_mark.line + 1 for child in node.value]
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)
_LineLoader.add_multi_constructor("!", lambda loader, suffix, node: Opaque(suffix))


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_LineLoader)  # a SafeLoader: no Python objects


def line_of(container: Any, key: Any, default: int = 0) -> int:
    if isinstance(container, Mapping):
        return container.key_lines.get(key, container.line)
    if isinstance(container, Sequence) and isinstance(key, int) and key < len(container.item_lines):
        return container.item_lines[key]
    return getattr(container, "line", default) or default


def strings_in(value: Any, container: Any = None, key: Any = None):
    """(string, line) of every string inside ``value``."""
    if isinstance(value, str):
        yield value, line_of(container, key)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings_in(v, value, k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from strings_in(v, value, i)


def is_literal(value: Any) -> bool:
    """A value whose meaning is known before the play runs: no template, no vault, no tag."""
    if isinstance(value, Opaque):
        return False
    if isinstance(value, str):
        return "{{" not in value and "{%" not in value
    return True


def yaml_error_at(exc: yaml.YAMLError) -> tuple[int, str]:
    """(line, first line of the message) of a parse error."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return (mark.line + 1 if mark else 1), str(getattr(exc, "problem", None) or exc).splitlines()[0]
