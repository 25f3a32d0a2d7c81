"""api_integration against the lab's real API code (lab/services/api/server.py) run as a local process.

The API starts without PostgreSQL (its pool connects in the background), and its admin endpoints keep the
integration switches in memory, so DATABASE_URL points at a closed port and nothing else is needed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
API_SERVER = ROOT / "lab" / "services" / "api" / "server.py"
START_TIMEOUT = 20


def free_port():
    """A port nothing listens on: bound once to get a free number, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def integrations(url):
    with urllib.request.urlopen(f"{url}/admin/integrations", timeout=5) as response:
        return json.load(response)["integrations"]


@pytest.fixture
def api_url(tmp_path):
    pytest.importorskip("psycopg_pool", reason="the lab API's connection pool needs psycopg-pool installed")
    port = free_port()
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT / "lab" / "services" / "shared"),
        SYNAP_DEPLOY_DIR=str(ROOT / "lab" / "deploy"),
        DATABASE_URL=f"postgresql://synap:lab-db-pass-7c41@127.0.0.1:{free_port()}/synap?connect_timeout=2",
        INNGEST_URL=f"http://127.0.0.1:{free_port()}",
    )
    log_path = tmp_path / "api.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, str(API_SERVER), "--port", str(port)], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            try:
                integrations(url)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the lab API did not start on port {port}:\n{log_path.read_text()[-2000:]}")
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_disable_check_then_real_then_again(module, api_url):
    args = {"url": api_url, "names": ["hub-protocol"], "enabled": False}

    planned = module("api_integration", args, check=True)
    assert "failed" not in planned, planned
    assert planned["changed"] is True
    assert planned["actions"] == [{"description": "disable integration hub-protocol", "name": "hub-protocol",
                                   "enabled": False}]
    assert planned["msg"] == "would disable integration hub-protocol"
    assert integrations(api_url) == {"hub-protocol": True}, "check mode switched the integration"

    done = module("api_integration", args)
    assert done["changed"] is True and done["actions"] == planned["actions"], done
    assert done["msg"] == "disabled integration hub-protocol"
    assert done["integrations"] == {"hub-protocol": False}
    assert integrations(api_url) == {"hub-protocol": False}

    again = module("api_integration", args)
    assert again["changed"] is False and again["actions"] == [], again
    assert again["msg"] == "integration hub-protocol already disabled"

    planned_again = module("api_integration", args, check=True)
    assert planned_again["changed"] is False and planned_again["actions"] == [], planned_again


def test_enable_again(module, api_url):
    module("api_integration", {"url": api_url, "names": ["hub-protocol"], "enabled": False})
    enabled = module("api_integration", {"url": api_url + "/", "names": ["hub-protocol", "hub-protocol"],
                                         "enabled": True})
    assert enabled["changed"] is True and enabled["msg"] == "enabled integration hub-protocol", enabled
    assert enabled["actions"] == [{"description": "enable integration hub-protocol", "name": "hub-protocol",
                                   "enabled": True}]
    assert integrations(api_url) == {"hub-protocol": True}


def test_unknown_integration_fails_and_changes_nothing(module, api_url):
    result = module("api_integration", {"url": api_url, "names": ["hub-protocol", "billing"], "enabled": False})
    assert result["failed"] is True, result
    assert result["msg"] == f"unknown integration(s) billing at {api_url}; the API knows: hub-protocol"
    assert integrations(api_url) == {"hub-protocol": True}


def test_unreachable_api_is_one_line(module):
    url = f"http://127.0.0.1:{free_port()}"
    result = module("api_integration", {"url": url, "names": ["hub-protocol"], "enabled": False})
    assert result["failed"] is True, result
    assert result["msg"] == (f"cannot read the integrations of the Synap API: GET {url}/admin/integrations: "
                             "connection refused")


def test_not_the_api_is_one_line(module, api_url):
    # A base URL with a path the API does not serve gets its 404 back, in one line.
    result = module("api_integration", {"url": api_url + "/api", "names": ["hub-protocol"], "enabled": False})
    assert result["failed"] is True, result
    assert result["msg"] == (f"cannot read the integrations of the Synap API: GET {api_url}/api/admin/integrations "
                             "answered HTTP 404: not found")


def test_empty_names(module):
    result = module("api_integration", {"names": [], "enabled": False})
    assert result["failed"] is True
    assert result["msg"] == "names is empty: give the integrations to switch, e.g. names: [hub-protocol]"
