"""Before an incident run starts: the inventory loads, --limit names hosts of it, and every host the run targets
has the variables its scenario needs (the catalog's `requires:` list).

It runs before every incident, so the common case (a YAML inventory, a file or a folder of them, with
group_vars/host_vars beside it) is read here directly, in milliseconds; anything else (INI files, scripts,
inventory plugins, host ranges, regex or subscripted patterns, limit files) goes through Ansible's own
InventoryManager and VariableManager, which take most of a second to import.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from synap_play import collection

collection.load()

from ansible_collections.synap.ops.plugins.plugin_utils.catalog import Scenario
from ansible_collections.synap.ops.plugins.plugin_utils.yaml_files import safe_load

# The scenario play's hosts are "{{ synap_hosts | default('synap') }}"; -e synap_hosts=... changes them.
DEFAULT_TARGET = "synap"
# The role defaults the play starts from (synap_database_url defaults to $DATABASE_URL there).
ROLE_DEFAULTS = Path("roles") / "synap" / "defaults" / "main.yml"
# Files Ansible reads as variables in group_vars/ and host_vars/.
VARS_EXTENSIONS = ("", ".yml", ".yaml", ".json")
# Ansible's INVENTORY_IGNORE_EXTS: files of an inventory folder that are not inventory sources.
IGNORED_EXTENSIONS = (".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry")
_NAME = re.compile(r"[A-Za-z0-9_.*?\-]+")  # a host or group name, or a glob of one
_SUBSCRIPT = re.compile(r"([A-Za-z0-9_.*?\-]+)\[-?\d*(:-?\d*)?\]")
_ENV_LOOKUP = re.compile(r"""\{\{\s*lookup\(\s*['"](?:ansible\.builtin\.)?env['"]\s*,\s*['"](\w+)['"]\s*\)\s*\}\}""")
_REFERENCE = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")


class PreflightError(ValueError):
    """The run cannot start; the message names the cause and what to do."""


class _Unsupported(Exception):
    """Something the quick reader does not handle; Ansible's InventoryManager reads it instead."""


class _Loader(yaml.SafeLoader):
    """Inventory YAML: a vault-encrypted value (!vault) is set, whatever it holds; it is never decrypted."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: "<encrypted>")


@dataclass
class Preflight:
    """What the run will target: the inventory's hosts, those --limit keeps, and those the scenario play runs on."""

    hosts: list[str]
    targets: list[str]
    reader: str  # "yaml" (read here) or "ansible" (InventoryManager)


def load_yaml_file(path: Path) -> Any:
    """A YAML (or JSON) file; PreflightError names the file and the line of a syntax error."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PreflightError(f"{path} is not a text file (not UTF-8 at byte {exc.start}); point -i at a YAML or "
                             f"INI inventory") from exc
    except OSError as exc:
        raise PreflightError(f"{path} cannot be read: {exc.strerror}") from exc
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader that also accepts !vault tags
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(exc.problem or exc.context or "syntax error").split())
        raise PreflightError(f"{path}{where}: not valid YAML ({problem}); fix it, then check with "
                             f"'ansible-inventory -i {path} --graph'") from exc
    except yaml.YAMLError as exc:
        raise PreflightError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from exc


@dataclass
class _Group:
    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    depth: int = 0


class _YamlInventory:
    """A YAML inventory read the way Ansible's yaml plugin and host_group_vars read it, for the common case."""

    reader = "yaml"

    def __init__(self, source: Path):
        self.source = source
        self.vars_dir = source if source.is_dir() else source.parent
        self.groups: dict[str, _Group] = {"all": _Group("all")}
        self.host_vars: dict[str, dict[str, Any]] = {}
        for path in self._sources(source):
            self._read(path)
        self._set_depths("all", 0, set())
        self._file_vars: dict[tuple[str, str], tuple[dict[str, Any], bool]] = {}

    # -- reading -------------------------------------------------------------------------------------
    def _sources(self, source: Path) -> list[Path]:
        if not source.is_dir():
            if source.suffix not in (".yml", ".yaml"):
                raise _Unsupported
            return [source]
        found = []
        for path in sorted(source.iterdir()):
            if path.name.startswith(".") or path.name.endswith(IGNORED_EXTENSIONS):
                continue
            if path.is_dir():
                if path.name not in ("group_vars", "host_vars"):
                    found.extend(self._sources(path))
            elif path.suffix in (".yml", ".yaml"):
                found.append(path)
            else:
                raise _Unsupported  # INI, a script, JSON: Ansible's plugins decide
        return found

    def _read(self, path: Path) -> None:
        document = load_yaml_file(path)
        if document is None:
            return
        if not isinstance(document, dict) or "plugin" in document:
            raise _Unsupported
        for name, body in document.items():
            self._group(str(name), body, "all" if str(name) != "all" else None)

    def _group(self, name: str, body: Any, parent: str | None) -> None:
        group = self.groups.setdefault(name, _Group(name))
        if parent and name not in self.groups[parent].children:
            self.groups[parent].children.append(name)
        if body is None:
            return
        if not isinstance(body, dict):
            raise _Unsupported
        hosts, variables, children = body.get("hosts"), body.get("vars"), body.get("children")
        if not isinstance(hosts or {}, dict) or not isinstance(variables or {}, dict) \
                or not isinstance(children or {}, dict):
            raise _Unsupported
        for host, own in (hosts or {}).items():
            host = str(host)
            if "[" in host or ":" in host or not isinstance(own or {}, dict):  # ranges, ports: Ansible's business
                raise _Unsupported
            self.host_vars.setdefault(host, {}).update(own or {})
            if host not in group.hosts:
                group.hosts.append(host)
        group.vars.update(variables or {})
        for child, child_body in (children or {}).items():
            self._group(str(child), child_body, name)

    def _set_depths(self, name: str, depth: int, path: set[str]) -> None:
        group = self.groups[name]
        group.depth = max(group.depth, depth)
        for child in group.children:
            if child not in path:
                self._set_depths(child, depth + 1, path | {name})

    # -- hosts -------------------------------------------------------------------------------------
    @property
    def hosts(self) -> list[str]:
        return list(self.host_vars)

    def group_hosts(self, name: str, seen: set[str] | None = None) -> list[str]:
        if name == "all":
            return self.hosts
        seen = seen if seen is not None else set()
        if name in seen:
            return []
        seen.add(name)
        group = self.groups[name]
        found = list(group.hosts)
        for child in group.children:
            found.extend(h for h in self.group_hosts(child, seen) if h not in found)
        return found

    def match(self, term: str) -> list[str]:
        """Ansible's _enumerate_matches for a name or a glob: the groups it names, else (or for a glob) hosts."""
        if term.startswith("~") or "[" in term:
            raise _Unsupported
        groups = [g for g in self.groups if fnmatch.fnmatchcase(g, term)]
        found: list[str] = []
        for group in groups:
            found.extend(h for h in self.group_hosts(group) if h not in found)
        if not groups or any(special in term for special in ".?*"):
            found.extend(h for h in self.hosts if fnmatch.fnmatchcase(h, term) and h not in found)
        return found

    def hosts_of(self, pattern: str) -> list[str]:
        return _evaluate(split_pattern(pattern), self.match, self.hosts)

    # -- variables ---------------------------------------------------------------------------------
    def _vars_of(self, kind: str, name: str) -> tuple[dict[str, Any], bool]:
        """group_vars/<name> or host_vars/<name> (a file with or without extension, or a folder of them).
        The flag says a file of them is vault-encrypted as a whole, so what it defines is unknown."""
        key = (kind, name)
        if key not in self._file_vars:
            folder = self.vars_dir / kind
            paths = [folder / f"{name}{ext}" for ext in VARS_EXTENSIONS if (folder / f"{name}{ext}").is_file()]
            if (folder / name).is_dir():
                paths += sorted(p for p in (folder / name).rglob("*") if p.is_file() and p.suffix in VARS_EXTENSIONS
                                and not p.name.startswith("."))
            merged: dict[str, Any] = {}
            opaque = False
            for path in paths:
                loaded = load_yaml_file(path)
                if isinstance(loaded, dict):
                    merged.update(loaded)
                elif isinstance(loaded, str) and loaded.startswith("$ANSIBLE_VAULT"):
                    opaque = True
                elif loaded is not None:
                    raise PreflightError(f"{path} must hold a mapping of variable names to values")
            self._file_vars[key] = (merged, opaque)
        return self._file_vars[key]

    def variables(self, host: str) -> tuple[dict[str, Any], bool]:
        """The host's inventory variables in Ansible's precedence order, and whether some are unknown (vault)."""
        groups = sorted((g for g in self.groups.values() if g.name == "all" or host in self.group_hosts(g.name)),
                        key=lambda g: (g.depth, g.name))
        merged: dict[str, Any] = {}
        for group in groups:  # the inventory file's group vars
            merged.update(group.vars)
        opaque = False
        for group in groups:  # group_vars/all, then group_vars/* by depth
            file_vars, hidden = self._vars_of("group_vars", group.name)
            merged.update(file_vars)
            opaque = opaque or hidden
        merged.update(self.host_vars.get(host) or {})
        file_vars, hidden = self._vars_of("host_vars", host)
        merged.update(file_vars)
        return merged, opaque or hidden


class _AnsibleInventory:
    """Any inventory Ansible can read, through its own InventoryManager and VariableManager."""

    reader = "ansible"

    def __init__(self, source: Path, limit_file: bool = False):
        import contextlib
        import io

        from ansible.errors import AnsibleError
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
        from ansible.vars.manager import VariableManager

        self._error = AnsibleError
        noise = io.StringIO()
        with contextlib.redirect_stderr(noise), contextlib.redirect_stdout(noise):
            try:
                self._loader = DataLoader()
                self._inventory = InventoryManager(loader=self._loader, sources=[str(source)])
                self._variables = VariableManager(loader=self._loader, inventory=self._inventory)
            except AnsibleError as exc:
                raise PreflightError(f"inventory {source}: {_first_line(exc)}") from exc
        self.hosts = [host.name for host in self._inventory.get_hosts("all")]

    def hosts_of(self, pattern: str) -> list[str]:
        try:
            return [host.name for host in self._inventory.get_hosts(pattern)]
        except self._error as exc:
            raise PreflightError(f"host pattern {pattern!r}: {_first_line(exc)}") from exc

    def variables(self, host: str) -> tuple[dict[str, Any], bool]:
        try:
            found = self._inventory.get_host(host)
            variables = self._variables.get_vars(host=found, include_hostvars=False)
        except self._error as exc:
            raise PreflightError(f"inventory variables of host {host}: {_first_line(exc)}") from exc
        return dict(variables), False


def _first_line(exc: Exception) -> str:
    """Ansible's message, on one line, with the file and line it names (its 'Origin:')."""
    text = str(getattr(exc, "message", "") or exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    origin = next((line for line in lines if line.startswith("Origin:")), None)
    first = lines[0] if lines else exc.__class__.__name__
    return f"{first} ({origin})" if origin and origin not in first else first


# -- host patterns ----------------------------------------------------------------------------------
def split_pattern(pattern: str) -> list[str]:
    """The terms of an Ansible host pattern (a,b or a:b; brackets keep their colons); PreflightError when
    the pattern is not one."""
    text = pattern.strip()
    if not text:
        raise PreflightError("--limit is empty; give a host or group pattern, such as synap or 'synap:!synap-2'")
    separators = "," if "," in text else ":"
    terms, current, depth = [], "", 0
    for char in text:
        depth += char == "["
        depth -= char == "]"
        if char in separators and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    for raw in terms:
        term = raw.strip()
        body = term[1:] if term[:1] in ("!", "&") else term
        why = None
        if not body:
            why = "it has an empty part"
        elif body.startswith("~"):
            try:
                re.compile(body[1:])
            except re.error as exc:
                why = f"the regular expression {body[1:]!r} is invalid: {exc}"
        elif not (_NAME.fullmatch(body) or _SUBSCRIPT.fullmatch(body)):
            why = f"{term!r} is not a host or group name, a glob or a subscript such as web[0:2]"
        if why:
            raise PreflightError(f"--limit {pattern!r} is not a host pattern: {why}; use host or group names, "
                                 f"such as synap or 'synap:!synap-2'")
    return [term.strip() for term in terms]


def _evaluate(terms: list[str], match, every: list[str]) -> list[str]:
    """Ansible's order: plain terms (or all), then &intersections, then !exclusions."""
    plain = [t for t in terms if t[0] not in "!&"]
    found: list[str] = []
    for term in plain or ["all"]:
        found.extend(h for h in (every if term in ("all", "*") else match(term)) if h not in found)
    for term in (t for t in terms if t[0] == "&"):
        kept = set(match(term[1:]))
        found = [h for h in found if h in kept]
    for term in (t for t in terms if t[0] == "!"):
        dropped = set(match(term[1:]))
        found = [h for h in found if h not in dropped]
    return found


# -- variables the scenario needs --------------------------------------------------------------------
def role_defaults(root: Path | None = None) -> dict[str, Any]:
    from synap_play.project import ProjectNotFound, project_root

    try:
        loaded = safe_load((root or project_root()).joinpath(ROLE_DEFAULTS).read_text(encoding="utf-8"))
    except (OSError, ProjectNotFound, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def missing_because(name: str, variables: dict[str, Any], environ=os.environ, depth: int = 0) -> str | None:
    """None when the variable has a value; else why not ('' for plainly unset). Only what is certain counts:
    a template this cannot evaluate is taken as set."""
    if name not in variables or variables[name] is None:
        return ""
    value = variables[name]
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return " (it is empty)"
    parts = re.split(r"(\{\{.*?\}\})", text)
    if any(part.strip() for part in parts[::2]):  # literal text around the expressions: some value
        return None
    reasons = []
    for expression in parts[1::2]:
        lookup, reference = _ENV_LOOKUP.fullmatch(expression), _REFERENCE.fullmatch(expression)
        if lookup:
            if environ.get(lookup.group(1)):
                return None
            reasons.append(f"{lookup.group(1)} is not set in the environment")
        elif reference and depth < 5:
            why = missing_because(reference.group(1), variables, environ, depth + 1)
            if why is None:
                return None
            reasons.append(f"{reference.group(1)} is not set" + why)
        else:
            return None
    return f" ({'; '.join(reasons)})" if reasons else None


# -- the preflight ------------------------------------------------------------------------------------
def load_inventory(inventory: Path, limit: str | None = None):
    """The inventory, read here when it is plain YAML, else by Ansible."""
    if limit is not None and (limit.strip().startswith("@") or "~" in limit or "[" in limit):
        return _AnsibleInventory(inventory)
    try:
        return _YamlInventory(inventory)
    except _Unsupported:
        return _AnsibleInventory(inventory)


def preflight(scenario: Scenario, inventory: Path, inventory_label: str, limit: str | None,
              extravars: dict[str, Any]) -> Preflight:
    """Refuse, with one line naming the cause and what to do, a run that cannot start; PreflightError."""
    terms = None if limit is None or limit.strip().startswith("@") else split_pattern(limit)
    if limit is not None and limit.strip().startswith("@") and not Path(limit.strip()[1:]).is_file():
        raise PreflightError(f"--limit {limit}: the file {limit.strip()[1:]} does not exist")
    source = load_inventory(inventory, limit)
    try:
        hosts = source.hosts
        kept = hosts if limit is None else (_evaluate(terms, source.match, hosts) if terms and source.reader == "yaml"
                                            else source.hosts_of(limit))
    except _Unsupported:
        source = _AnsibleInventory(inventory)
        hosts = source.hosts
        kept = source.hosts_of(limit)
    if not hosts:
        raise PreflightError(f"inventory {inventory_label} has no hosts; check it with "
                             f"'ansible-inventory -i {inventory} --graph'")
    if not kept:
        raise PreflightError(f"--limit {limit} matches no host of inventory {inventory_label} "
                             f"(hosts: {', '.join(hosts[:5])}{', ...' if len(hosts) > 5 else ''})")
    variables = {host: source.variables(host) for host in kept}  # a broken group_vars file is named here
    if not scenario.requires:
        return Preflight(hosts=hosts, targets=kept, reader=source.reader)
    target = str(extravars.get("synap_hosts") or DEFAULT_TARGET)
    try:
        aimed = source.hosts_of(target)
    except _Unsupported:
        source = _AnsibleInventory(inventory)
        aimed = source.hosts_of(target)
    targets = [h for h in aimed if h in kept]
    if not targets:
        where = f"--limit {limit} matches no host" if limit is not None else "there is no host"
        raise PreflightError(f"inventory {inventory_label}: {where} of '{target}', which {scenario.name} runs on; "
                             f"add the hosts to that group, or pick them with -e synap_hosts=PATTERN")
    defaults = role_defaults()
    short = []
    for host in targets:
        own, opaque = variables[host] if host in variables else source.variables(host)
        if opaque:  # a vault-encrypted vars file may define anything
            continue
        merged = {**defaults, **own, **extravars}
        gaps = [(name, missing_because(name, merged)) for name in scenario.requires]
        gaps = [(name, why) for name, why in gaps if why is not None]
        if gaps:
            short.append((host, gaps))
    if short:
        host, gaps = short[0]
        more = f" (and {len(short) - 1} more host(s))" if len(short) > 1 else ""
        names = ", ".join(f"{name}{why}" for name, why in gaps)
        raise PreflightError(f"inventory {inventory_label}: host {host}{more} has no {names}; set it in group_vars "
                             f"(see inventory/staging)")
    return Preflight(hosts=hosts, targets=targets, reader=source.reader)
