"""Problems, and argument values checked against an option spec the way AnsibleModule would check them."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from synap_play.validate.yamllines import is_literal, line_of, yaml_error_at


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" + (f" (did you mean {self.hint}?)" if self.hint else "")


def did_you_mean(word: Any, candidates) -> str | None:
    close = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=0.6)
    return close[0] if close else None


def names_only(names) -> dict[str, dict]:
    """A spec that knows these option names and takes any value for them."""
    return {name: {"type": "raw"} for name in names}


def _type_error(value: Any, wanted: str | None) -> tuple[Any, str | None]:
    """(converted value, error) the way AnsibleModule converts a literal of this type."""
    if not wanted or wanted == "raw" or not is_literal(value):
        return value, None
    if wanted == "str":
        if isinstance(value, dict | list):
            return value, f"must be a string, got a {type(value).__name__}"
        return value, None
    from ansible.module_utils.common.parameters import DEFAULT_TYPE_VALIDATORS

    checker = DEFAULT_TYPE_VALIDATORS.get(wanted)
    if checker is None:
        return value, None
    try:
        return checker(value), None
    except (TypeError, ValueError):
        return value, f"must be {'an' if wanted[0] in 'aeiou' else 'a'} {wanted}, got {value!r}"


def _canonical(name: str, spec: dict) -> str:
    """An alias shares its option's attrs: report a missing option once, by its first name."""
    return next(n for n, a in spec.items() if a is spec[name])


def _in_choices(value: Any, choices) -> bool:
    return value in choices or str(value) in {str(c) for c in choices}


class Checker:
    """Collects the problems, each with its file shown relative to ``root``."""

    def __init__(self, root: Path):
        self.root = root
        self.problems: list[Problem] = []

    def report(self, path: Path, line: int, message: str, hint: str | None = None) -> None:
        try:
            shown = path.resolve().relative_to(self.root.resolve())
        except ValueError:
            shown = path
        self.problems.append(Problem(str(shown), line, message, hint))

    def report_invalid_yaml(self, path: Path, exc: yaml.YAMLError) -> None:
        line, message = yaml_error_at(exc)
        self.report(path, line, f"not valid YAML: {message}")

    def check_args(self, path: Path, args: Any, spec: dict[str, dict], what: str, provided: set[str] = frozenset(),
                   line: int = 0) -> None:
        """``args`` (a task's or a source's) against the option ``spec``: names, required, literal types, choices."""
        if not isinstance(args, dict):
            return
        for key, value in args.items():
            key_line = line_of(args, key, line)
            if key not in spec:
                self.report(path, key_line, f"{what}: unknown option {key!r}", did_you_mean(key, spec))
                continue
            self.check_value(path, key_line, value, spec[key], f"{what}: option {key!r}")
        for name, attrs in spec.items():
            if attrs.get("required") and name not in args and name not in provided and name == _canonical(name, spec):
                self.report(path, getattr(args, "line", line), f"{what}: missing required option {name!r}")

    def check_value(self, path: Path, line: int, value: Any, attrs: dict, what: str) -> None:
        if not is_literal(value):
            return
        wanted = attrs.get("type") or "str"
        converted, error = _type_error(value, wanted)
        if error:
            self.report(path, line, f"{what} {error}")
            return
        choices = attrs.get("choices")
        if wanted == "list" and isinstance(converted, list):
            for index, item in enumerate(converted):
                item_line = line_of(value, index, line) if value is converted else line
                self.check_value(path, item_line, item, {"type": attrs.get("elements"), "choices": choices,
                                                         "options": attrs.get("options")}, what)
            return
        if choices and not _in_choices(converted, choices):
            self.report(path, line, f"{what} must be one of {', '.join(map(str, choices))}, got {value!r}",
                        did_you_mean(value, choices))
        if attrs.get("options") and isinstance(value, dict):
            self.check_args(path, value, attrs["options"], what, line=line)
