"""The rehearsal lab end to end: up, then for each fault inject -> see it with plain commands -> clear ->
healthy again, then down. Needs a running Docker engine (scripts/docker-engine start)."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from click.testing import CliRunner
from labtools import cli, curl, eventually, psql, running_runs, sh

from synap_play.lab.cli import lab
from synap_play.lab.load import run as run_load
from synap_play.lab.stack import API_URL, INNGEST_URL, Lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def running_lab():
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode:
        pytest.skip("no Docker engine (scripts/docker-engine start)")
    output = cli("up")
    assert "http://127.0.0.1:3000" in output
    yield Lab()
    cli("down")
    assert sh("docker compose ps -a -q").strip() == ""


def assert_healthy(stack: Lab) -> None:
    stack.wait_healthy()
    status, body = curl(f"{API_URL}/health")
    assert status == 200, body
    assert "faults: none" in cli("status")
    assert run_load(API_URL, 3, concurrency=2, rate=10).error_rate == 0


def observe_bad_deploy():
    assert "release 2026.11.3" in sh("git -C state/deploy log --oneline -10")
    result = run_load(API_URL, 5, concurrency=2, rate=20)
    assert result.error_rate > 0.05, result.summary()
    assert "KeyError" in sh("docker compose logs api --tail=100 | grep ERROR")


def observe_external_down():
    assert "hub" not in sh("docker compose ps --services --status running").split()
    status, body = curl(f"{API_URL}/api/search?workspace_id=00000000-0000-0000-0000-000000000000&q=x")
    assert status == 502 and "hub-protocol" in body


def observe_queue_backup():
    metrics = curl(f"{INNGEST_URL}/metrics")[1]
    depth = next(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("inngest_queue_depth"))
    assert depth > 100


def observe_worker_stuck():
    eventually(lambda: running_runs() >= 4)
    time.sleep(2)
    assert running_runs() >= 4


def observe_db_slow():
    rows = psql("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep%' "
                "AND application_name = 'synap-reports'")
    assert int(rows) == 3


def observe_postgres_down():
    assert "postgres" not in sh("docker compose ps --services --status running").split()
    assert curl(f"{API_URL}/health")[0] == 503


def observe_connection_exhaustion():
    proc = subprocess.run(["psql", "postgresql://synap:lab-db-pass-7c41@127.0.0.1:25432/synap", "-c", "SELECT 1;"],
                          capture_output=True, text=True) if shutil.which("psql") else None
    if proc is not None:
        assert proc.returncode != 0 and "connection slots" in proc.stderr
    used = int(psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'synap-api'"))
    assert used >= 90
    assert curl(f"{API_URL}/health")[0] == 503


def observe_connection_leak():
    time.sleep(6)  # past the lab inventory's idle threshold (5 s)
    idle = psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'synap-jobs' AND state = 'idle' "
                "AND state_change < now() - interval '5 seconds'")
    assert int(idle) >= 10


def observe_latency():
    assert "entities_workspace_id_idx" not in psql("SELECT indexname FROM pg_indexes WHERE tablename = 'entities'")
    result = run_load(API_URL, 6, concurrency=4, rate=20)
    # A healthy lab answers in tens of milliseconds; with the fault p95 lands around the lab's 0.5 s threshold
    # (seen at 0.48 s on a busy machine), so the observation asks for clearly slow, not for the threshold itself.
    assert result.percentile(0.95) > 0.3, result.summary()


def observe_proposals_stuck():
    eventually(lambda: int(psql("SELECT count(*) FROM pg_locks WHERE NOT granted")) > 0)
    assert psql("SELECT state FROM pg_stat_activity WHERE application_name = 'synap-admin'") == "idle in transaction"


OBSERVATIONS = {
    "bad-deploy": observe_bad_deploy,
    "external-down": observe_external_down,
    "queue-backup": observe_queue_backup,
    "worker-stuck": observe_worker_stuck,
    "db-slow": observe_db_slow,
    "postgres-down": observe_postgres_down,
    "connection-exhaustion": observe_connection_exhaustion,
    "connection-leak": observe_connection_leak,
    "latency": observe_latency,
    "proposals-stuck": observe_proposals_stuck,
}


def test_faults_lists_all_ten():
    output = CliRunner().invoke(lab, ["faults"]).output
    assert [line.split()[0] for line in output.splitlines()] == list(OBSERVATIONS)


def test_unknown_fault_is_a_usage_error():
    result = CliRunner().invoke(lab, ["inject", "meteor"])
    assert result.exit_code == 2 and "meteor" in result.output


@pytest.mark.parametrize("fault", list(OBSERVATIONS))
def test_fault_inject_observe_clear(running_lab, fault):
    assert_healthy(running_lab)
    cli("inject", fault)
    assert fault in cli("status")
    OBSERVATIONS[fault]()
    cli("clear")
    assert_healthy(running_lab)
