"""Shared test helpers: run a synap.ops module the way Ansible does, as a separate Python process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synap_play import collection
from synap_play.project import collections_path

# Tests import the collection's code as the CLI does: ansible_collections.synap.ops, through Ansible's loader.
collection.load()

# The lab tests bring up the stand-in backend, whose faults are all ten and quick to rehearse; the tests of Synap's
# real backend (tests/lab/test_real_backend.py) ask for it by name when they bring the lab up.
os.environ.setdefault("SYNAP_LAB_BACKEND", "standin")

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = collections_path(ROOT)


def run_module(name: str, args: dict | None = None, *, check: bool = False, timeout: float = 60) -> dict:
    """Run plugins/modules/<name>.py with ``args`` and return its JSON result.

    The module runs in its own interpreter with the collection importable as
    ``ansible_collections.synap.ops``, exactly the code path Ansible's module runner takes.
    """
    module_args = dict(args or {})
    module_args["_ansible_check_mode"] = check
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    proc = subprocess.run(
        [sys.executable, "-m", f"ansible_collections.synap.ops.plugins.modules.{name}"],
        input=json.dumps({"ANSIBLE_MODULE_ARGS": module_args}),
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"module {name} printed no JSON (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}") from exc


@pytest.fixture(autouse=True)
def private_lock_dir(tmp_path, monkeypatch):
    """Each test's synap-play runs take their mitigator lock files, and keep their first-look plans, in folders
    of their own, so test runs on one machine never wait for or read each other."""
    monkeypatch.setenv("SYNAP_PLAY_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setenv("SYNAP_PLAY_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def incidents_dir(tmp_path):
    return tmp_path / "incidents"


@pytest.fixture
def module():
    """``module(name, args, check=False)`` -> result dict."""
    return run_module


@pytest.fixture(scope="session")
def pg():
    """One throwaway PostgreSQL 15 cluster for the whole run (max_connections 25, pg_stat_statements preloaded,
    the ``synap`` schema): the module tests, the replayed and the broken-target scenarios share it."""
    from pg_cluster import Cluster

    cluster = Cluster(max_connections=25)
    try:
        cluster.start()
        cluster.prepare_synap()
        yield cluster
    finally:
        cluster.destroy()


def pytest_collection_modifyitems(config, items):
    """The tests of Synap's real backend last: the lab changes backend once (down, then up with it), not twice."""
    items.sort(key=lambda item: item.path.name == "test_real_backend.py")


@pytest.fixture(scope="session")
def lab_session():
    """The one lab of the whole run: whoever needs the stand-ins' lab gets it (tests/labtools.py's standin_lab), and
    it goes down after the last test. Bringing it up is a minute; a reset in place, seconds."""
    yield
    from labtools import cli, docker_answers

    if docker_answers():
        cli("down")


@pytest.fixture(scope="module")
def lab(lab_session):
    """The stand-ins' lab, reset to its seed for each module that asks (up first when it is not up)."""
    from labtools import docker_answers, standin_lab

    if not docker_answers():
        pytest.skip("no Docker engine (scripts/docker-engine start)")

    return standin_lab()
