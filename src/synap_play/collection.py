"""The synap.ops collection, imported by the CLI the way Ansible imports it.

The CLI shares its names (plugins/plugin_utils/protocol.py), the incident record and the look-ups' gather
functions with the collection by importing them from it: ``ansible_collections.synap.ops...``. Ansible's own
collection loader makes that name importable from the project's collections path; it is installed once, on
first use, and only by the commands that need it (``synap-play --help`` does not pay for it).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from synap_play.project import collections_path

PACKAGE = "ansible_collections.synap.ops"
_loaded = False


def load() -> None:
    """Make ``ansible_collections.synap.ops`` importable (idempotent)."""
    global _loaded
    if _loaded:
        return
    try:
        importlib.import_module(f"{PACKAGE}.plugins.plugin_utils.protocol")
    except ImportError:
        from ansible.plugins.loader import init_plugin_loader

        init_plugin_loader([str(collections_path())])
    _loaded = True


def module(name: str) -> ModuleType:
    """A module of the collection by its path below it: module("plugins.plugin_utils.protocol")."""
    load()
    return importlib.import_module(f"{PACKAGE}.{name}")


def protocol() -> ModuleType:
    return module("plugins.plugin_utils.protocol")
