"""The synap_* variables the roles read, as roles/synap/meta/argument_specs.yml declares them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from synap_play.validate.checker import Checker
from synap_play.validate.yamllines import is_literal, load_yaml

# argument_specs has no minimum/maximum: the range is stated in the description.
RANGE = re.compile(r"Range: (-?[\d.]+) (?:to (-?[\d.]+)|or more)")


class VariableSpec:
    """name -> attrs of every declared variable; a missing or broken spec file is a problem of its own."""

    def __init__(self, path: Path, checker: Checker):
        self.path, self.checker = path, checker
        self.declared = self._load()

    def _load(self) -> dict[str, dict]:
        try:
            document = load_yaml(self.path)
        except FileNotFoundError:
            self.checker.report(self.path, 1, "missing: the synap_* variables the roles read are declared here")
            return {}
        except yaml.YAMLError as exc:
            self.checker.report_invalid_yaml(self.path, exc)
            return {}
        options = (((document or {}).get("argument_specs") or {}).get("main") or {}).get("options") or {}
        spec = {}
        for name, attrs in options.items():
            attrs = dict(attrs or {})
            description = attrs.get("description") or ""
            text = " ".join(description) if isinstance(description, list) else str(description)
            found = RANGE.search(text)
            if found:
                attrs["minimum"] = float(found.group(1))
                attrs["maximum"] = float(found.group(2)) if found.group(2) else None
            spec[name] = attrs
        return spec

    def check(self, path: Path, line: int, name: str, value: Any) -> None:
        """A value of the declared variable ``name``: its type, choices and range."""
        attrs = self.declared[name]
        self.checker.check_value(path, line, value, attrs, name)
        low, high = attrs.get("minimum"), attrs.get("maximum")
        if low is None or not is_literal(value) or isinstance(value, bool):
            return
        try:
            number = float(value)
        except (TypeError, ValueError):
            return
        if number < low or (high is not None and number > high):
            wanted = f"from {low:g} to {high:g}" if high is not None else f"{low:g} or more"
            self.checker.report(path, line, f"{name} must be {wanted}, got {value!r}")
