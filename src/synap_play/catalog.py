"""The scenario catalog (playbooks/scenarios.yml): an editable list of what synap-play can run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

SEVERITIES = ("P0", "P1", "P2", "P3")


class CatalogError(ValueError):
    """The catalog file is missing or malformed."""


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    severity: str
    playbook: Path
    description: str = ""
    alerts: tuple[str, ...] = ()
    resolution: tuple[str, ...] = field(default=())
    # Variables every targeted host must have (the preflight checks them before the playbook starts).
    requires: tuple[str, ...] = ()

    @property
    def available(self) -> bool:
        return self.playbook.is_file()


def load_catalog(path: Path) -> dict[str, Scenario]:
    """Read the catalog; playbook paths are relative to the catalog file."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CatalogError(f"scenario catalog {path} not found") from exc
    except yaml.YAMLError as exc:
        raise CatalogError(f"scenario catalog {path} is not valid YAML: {exc}".splitlines()[0]) from exc
    entries = (document or {}).get("scenarios") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise CatalogError(f"scenario catalog {path} needs a top-level 'scenarios' list")
    scenarios: dict[str, Scenario] = {}
    for index, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not entry.get("name") or not entry.get("playbook"):
            raise CatalogError(f"scenario #{index} in {path} needs at least 'name' and 'playbook'")
        severity = str(entry.get("severity", "P2"))
        if severity not in SEVERITIES:
            raise CatalogError(f"scenario {entry['name']!r} in {path}: severity {severity!r} is not one of P0-P3")
        requires = entry.get("requires") or []
        if not isinstance(requires, list) or not all(isinstance(name, str) and name.isidentifier() for name in requires):
            raise CatalogError(f"scenario {entry['name']!r} in {path}: requires must be a list of variable names")
        scenarios[entry["name"]] = Scenario(
            name=entry["name"],
            title=entry.get("title") or entry["name"],
            severity=severity,
            playbook=(path.parent / entry["playbook"]).resolve(),
            description=entry.get("description") or "",
            alerts=tuple(entry.get("alerts") or ()),
            resolution=tuple(entry.get("resolution") or ()),
            requires=tuple(requires),
        )
    return scenarios
