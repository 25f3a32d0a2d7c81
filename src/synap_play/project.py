"""Where the synap.ops collection lives, and how Ansible is made to see it.

The repository root is the collection. Ansible finds collections only below a directory named
``ansible_collections/<namespace>/<name>``, so we keep a generated link
``.collections/ansible_collections/synap/ops`` pointing at the root; ``ansible.cfg`` names that path,
so plain ``ansible-doc synap.ops.<module>`` and ``ansible-playbook playbooks/<x>.yml`` work too.
"""

from __future__ import annotations

import os
from pathlib import Path

COLLECTION_NAMESPACE = "synap"
COLLECTION_NAME = "ops"


class ProjectNotFound(RuntimeError):
    pass


def project_root() -> Path:
    """The checkout holding galaxy.yml: $SYNAP_PLAY_PROJECT, else the one this package was installed from."""
    override = os.environ.get("SYNAP_PLAY_PROJECT")
    candidates = [Path(override)] if override else [Path(__file__).resolve().parents[2], Path.cwd()]
    for candidate in candidates:
        if (candidate / "galaxy.yml").is_file() and (candidate / "playbooks").is_dir():
            return candidate.resolve()
    raise ProjectNotFound(
        "cannot find the synap-play project (galaxy.yml); install it with 'pip install -e <checkout>' "
        "or set SYNAP_PLAY_PROJECT"
    )


def collections_path(root: Path | None = None) -> Path:
    """Return the collections path holding synap.ops, creating the link when it is missing."""
    root = root or project_root()
    base = root / ".collections"
    link = base / "ansible_collections" / COLLECTION_NAMESPACE / COLLECTION_NAME
    if not (link.is_symlink() and link.resolve() == root):
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        # Relative, so the checkout can be moved or mounted elsewhere.
        link.symlink_to(os.path.relpath(root, link.parent))
    return base


def cache_root() -> Path:
    """What synap-play keeps between runs: $SYNAP_PLAY_CACHE_DIR, else $XDG_CACHE_HOME/synap-play, else
    ~/.cache/synap-play."""
    explicit = os.environ.get("SYNAP_PLAY_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "synap-play"
