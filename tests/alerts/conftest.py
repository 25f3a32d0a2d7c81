"""Fixtures for the alert intake, lock, notify and EDA tests."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from alert_helpers import ALERT_MAP, CATALOG, INVENTORY
from click.testing import CliRunner


@pytest.fixture
def synap_alert(incidents_dir, tmp_path):
    """Invoke `alert` in-process against the fixture catalog, mapping and inventory; returns click's Result."""
    from synap_play.alert_cli import alert

    def invoke(*args: str, payload: dict | str | None = None, flag: Path | None = None):
        argv = list(args)
        if payload is not None:
            argv += ["--payload", "-"]
        argv += ["--catalog", str(CATALOG), "--alert-map", str(ALERT_MAP), "-i", str(INVENTORY),
                 "--incidents-dir", str(incidents_dir), "-e", f"flag_path={flag or tmp_path / 'flag'}"]
        text = json.dumps(payload) if isinstance(payload, dict) else payload
        return CliRunner().invoke(alert, argv, input=text, catch_exceptions=False)

    return invoke


@pytest.fixture
def records(incidents_dir):
    def read() -> list[dict]:
        if not incidents_dir.is_dir():
            return []
        return [json.loads((f / "incident.json").read_text()) for f in sorted(incidents_dir.iterdir())]

    return read


@pytest.fixture(scope="session")
def pg():
    """A throwaway PostgreSQL 15 cluster (the one tests/postgres uses), for the mitigator lock."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "postgres"))
    from pg_cluster import Cluster

    cluster = Cluster(max_connections=20)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
