# Copyright: Synap operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scenario catalog (playbooks/scenarios.yml): what can be run, its title, default severity, alerts,
follow-ups and required variables. One reader for synap-play, the incident callback and alert intake."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import CATALOG_FILE, SEVERITIES
from ansible_collections.synap.ops.plugins.plugin_utils.yaml_files import safe_load

# The collection's own playbooks folder: the catalog an installed collection runs with.
PLAYBOOKS_DIR = Path(__file__).resolve().parents[2] / "playbooks"
DEFAULT_CATALOG = PLAYBOOKS_DIR / CATALOG_FILE


class CatalogError(ValueError):
    """The scenario catalog is missing or malformed."""


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    severity: str
    playbook: Path
    description: str = ""
    alerts: tuple = ()
    resolution: tuple = ()
    # Variables every targeted host must have.
    requires: tuple = ()

    @property
    def available(self) -> bool:
        return self.playbook.is_file()


def load_catalog(path: Path | None = None) -> dict[str, Scenario]:
    """Read the catalog (default: the collection's playbooks/scenarios.yml); playbook paths are relative to it."""
    path = Path(path) if path is not None else DEFAULT_CATALOG
    try:
        document = safe_load(path.read_text(encoding="utf-8"))
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


def entry_for_playbook(playbook: Path) -> Scenario | None:
    """The catalog entry that runs this playbook, from the catalog beside it or one folder up (a catalog naming
    playbooks/x.yml); None when no catalog lists it."""
    playbook = playbook.resolve()
    for folder in (playbook.parent, playbook.parent.parent):
        if (folder / CATALOG_FILE).is_file():
            try:
                catalog = load_catalog(folder / CATALOG_FILE)
            except CatalogError:
                continue
            found = next((s for s in catalog.values() if s.playbook == playbook), None)
            if found:
                return found
    return None
