"""The gateway in front of the api (lab/services/gateway): the runbook's `docker compose up -d --scale api=3` and
`docker compose restart api` work while one address stays the api, and its /metrics and /health speak for all
replicas. Needs a running Docker engine (scripts/docker-engine start).

By default the lab is brought up and down as in test_lab.py (project synap-lab, the fixed ports). To run it beside
a lab that is in use, name another project and free ports, e.g.
    SYNAP_LAB_TEST_PROJECT=synap-gw-test SYNAP_LAB_API_PORT=13000 SYNAP_LAB_PG_PORT=15432 \\
    SYNAP_LAB_INNGEST_PORT=18288 SYNAP_LAB_HUB_PORT=13100 .venv/bin/pytest tests/lab/test_gateway.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter

import pytest
from click.testing import CliRunner
from labtools import docker_answers
from prometheus_client.parser import text_string_to_metric_families

from synap_play.lab.access import API_URL
from synap_play.lab.cli import lab
from synap_play.lab.stack import PROJECT_NAME, Lab
from synap_play.project import project_root

pytestmark = pytest.mark.lab
LAB_DIR = project_root() / "lab"
PROJECT = os.environ.get("SYNAP_LAB_TEST_PROJECT", PROJECT_NAME)
OWN_PROJECT = PROJECT != PROJECT_NAME
API = f"http://127.0.0.1:{os.environ['SYNAP_LAB_API_PORT']}" if OWN_PROJECT else API_URL
PORT_VARIABLES = ("SYNAP_LAB_API_PORT", "SYNAP_LAB_PG_PORT", "SYNAP_LAB_INNGEST_PORT", "SYNAP_LAB_HUB_PORT")
ROUTE = "/api/workspaces"


def cli(*args: str) -> str:
    result = CliRunner().invoke(lab, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def compose(*args: str) -> str:
    """A plain `docker compose` command in lab/, as the runbook has an operator type it."""
    proc = subprocess.run(["docker", "compose", "-p", PROJECT, *args], cwd=LAB_DIR, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def request(path: str, method: str = "GET", body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{API}{path}", data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=15) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def health() -> tuple[int, dict]:
    status, _, body = request("/health")
    return status, json.loads(body)


def healthy_replicas() -> int:
    status, answer = health()
    return answer["healthy_replicas"] if status == 200 else 0


def eventually(check, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.5)


def route_totals(text: str) -> dict[str, float]:
    """Requests to ROUTE by metric: the counter and the histogram's _count, over every status."""
    totals = {"synap_http_requests_total": 0.0, "api_request_duration_count": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in totals and sample.labels.get("route") == ROUTE:
                totals[sample.name] += sample.value
    return totals


def replica_metrics(index: int) -> str:
    """One replica's own /metrics, read inside its container (replicas publish no port)."""
    return compose("exec", "-T", "--index", str(index), "api", "python3", "-c",
                   "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:3000/metrics').read().decode())")


@pytest.fixture(scope="module")
def gateway_lab(request):
    if not OWN_PROJECT:
        request.getfixturevalue("lab")
        yield
        return
    if not docker_answers():
        pytest.skip("no Docker engine (scripts/docker-engine start)")
    missing = [name for name in PORT_VARIABLES if name not in os.environ]
    if missing:
        pytest.fail(f"SYNAP_LAB_TEST_PROJECT={PROJECT} needs free host ports in {', '.join(missing)}")
    stack = Lab()
    had_state = stack.state_dir.exists()
    stack.image()
    stack.deploy.init()
    compose("up", "-d", "--wait")
    yield
    compose("down", "--volumes", "--remove-orphans", "--timeout", "5")
    if not had_state:
        shutil.rmtree(stack.state_dir)


def test_one_address_passes_method_path_query_and_body(gateway_lab):
    status, answer = health()
    assert status == 200 and answer["healthy_replicas"] == 1 and answer["release"], answer
    status, headers, body = request(f"{ROUTE}?limit=1")
    assert status == 200 and len(json.loads(body)["workspaces"]) == 1
    assert headers["X-Synap-Upstream"].endswith(":3000")
    status, _, body = request("/api/entities", "POST", {"title": "no workspace"})
    assert status == 400 and "workspace_id is required" in body


def test_scale_spreads_requests_and_metrics_are_the_sum(gateway_lab):
    compose("up", "-d", "--scale", "api=3", "--wait")
    eventually(lambda: healthy_replicas() == 3)
    before = route_totals(request("/metrics")[2])
    served_by = Counter(request(f"{ROUTE}?limit=1")[1]["X-Synap-Upstream"] for _ in range(30))
    assert len(served_by) == 3 and set(served_by.values()) == {10}, served_by

    summed = request("/metrics")[2]
    after = route_totals(summed)
    assert {name: after[name] - before[name] for name in after} == dict.fromkeys(after, 30.0)
    per_replica = [route_totals(replica_metrics(index)) for index in (1, 2, 3)]
    assert all(totals["synap_http_requests_total"] >= 10 for totals in per_replica)
    assert after == {name: sum(totals[name] for totals in per_replica) for name in after}
    assert 'synap_gateway_replicas{state="up"} 3.0' in summed


def test_restart_api_keeps_the_address(gateway_lab):
    compose("restart", "api")
    eventually(lambda: healthy_replicas() == 3)
    assert [request(f"{ROUTE}?limit=1")[0] for _ in range(9)] == [200] * 9


def test_health_is_503_without_a_healthy_replica(gateway_lab):
    compose("stop", "api")
    eventually(lambda: health()[0] == 503)
    status, answer = health()
    assert answer["status"] == "unavailable" and answer["replicas"] == {}, answer
    assert request(ROUTE)[0] == 503
    compose("up", "-d", "--scale", "api=1", "--wait")
    eventually(lambda: healthy_replicas() == 1)
