"""Broken targets for the robustness tests: an inventory of the lab's shape whose endpoints refuse, unless a test
points one at a server of its own."""

from __future__ import annotations

import socket
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# Planted in every inventory: no file of a record may carry them.
SIGNING_KEY = "signkey-robust-targets-77d1"
DB_PASSWORD = "robust-targets-pw-19ab"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_inventory(folder: Path, **overrides) -> Path:
    """inventory/lab's settings on one local host, every endpoint refused unless overridden, short windows."""
    settings = yaml.safe_load((ROOT / "inventory" / "lab" / "group_vars" / "all.yml").read_text(encoding="utf-8"))
    missing = folder / "no-such-project"
    settings.update(synap_project_root=str(ROOT), synap_compose_project_dir=str(missing), synap_compose_files=[],
                    synap_deploy_repo=str(missing), synap_api_url=f"http://127.0.0.1:{closed_port()}",
                    synap_inngest_url=f"http://127.0.0.1:{closed_port()}", synap_inngest_signing_key=SIGNING_KEY,
                    synap_database_url=f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:{closed_port()}/synap",
                    synap_external_endpoints=[], synap_noncritical_integrations=[], synap_verify_timeout_seconds=3,
                    synap_metrics_window_seconds=1)
    settings.update(overrides)
    inventory = folder / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "group_vars" / "all.yml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    hosts = {"all": {"children": {"synap": {"hosts": {"synap-test": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}}}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts), encoding="utf-8")
    return inventory
