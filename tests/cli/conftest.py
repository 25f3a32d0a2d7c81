"""Fixtures for the CLI tests: the fixture catalog and inventory, and a way to run synap-play."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from synap_play.cli import cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CATALOG = FIXTURES / "scenarios.yml"
INVENTORY = FIXTURES / "inventory" / "hosts.yml"


@pytest.fixture
def synap_play(incidents_dir):
    """Invoke the CLI in-process with the fixture catalog; returns click's Result."""

    def invoke(*args: str, catalog: bool = True, env: dict | None = None):
        argv = list(args)
        command = argv[0] if argv else ""
        takes_catalog = command not in ("incidents", "show", "--help", "--version", "-h")
        if catalog and takes_catalog:
            argv += ["--catalog", str(CATALOG)]
        if command not in ("list", "--help", "--version", "-h"):
            argv += ["--incidents-dir", str(incidents_dir)]
        return CliRunner().invoke(cli, argv, env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
def only_record(incidents_dir):
    def read() -> tuple[Path, dict]:
        folders = sorted(incidents_dir.iterdir())
        assert len(folders) == 1, folders
        return folders[0], json.loads((folders[0] / "incident.json").read_text())

    return read
