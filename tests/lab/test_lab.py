"""The rehearsal lab's own commands: the ten faults listed, an unknown one refused; down and up; reset in place back to
what up brings. (Each fault injected, seen with plain commands and cleared: tests/lab/test_alerts.py, which also
sees it fire its alert.) Needs a running Docker engine (scripts/docker-engine start)."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner
from labtools import OBSERVATIONS, assert_healthy, cli, curl, psql, queue_depth, running_runs, sh

from synap_play.lab import access, monitoring
from synap_play.lab.access import API_URL
from synap_play.lab.cli import lab as lab_command
from synap_play.lab.reset import IN_PLACE, SEED_DATABASE, seed_kept

pytestmark = pytest.mark.lab


def test_faults_lists_all_ten():
    output = CliRunner().invoke(lab_command, ["faults"]).output
    assert [line.split()[0] for line in output.splitlines()] == list(OBSERVATIONS)


def test_unknown_fault_is_a_usage_error():
    result = CliRunner().invoke(lab_command, ["inject", "meteor"])
    assert result.exit_code == 2 and "meteor" in result.output


def lab_fingerprint() -> dict:
    """What a reset must bring back, as plain commands see it: services and replicas, the deploy checkout, the data,
    PostgreSQL's settings and sessions, the api's switches, Inngest's runs and queue."""
    return {
        "containers": sorted(sh("docker compose ps --all --format '{{.Name}} {{.State}}'").splitlines()),
        "head": sh("git -C state/deploy rev-parse HEAD").strip(),
        "worktree": sh("git -C state/deploy status --porcelain"),
        "data": psql("SELECT (SELECT count(*) FROM workspaces) || ' ' || (SELECT count(*) FROM entities) || ' ' || "
                     "(SELECT md5(string_agg(id::text || status, ',' ORDER BY id)) FROM proposals)"),
        "indexes": psql("SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes "
                        "WHERE schemaname = 'public'"),
        "settings": psql("SELECT current_setting('max_connections') || ' ' || "
                         "(SELECT count(*) FROM pg_file_settings WHERE sourcefile LIKE '%auto.conf')"),
        "fault sessions": psql("SELECT count(*) FROM pg_stat_activity "
                               "WHERE application_name IN ('synap-reports', 'synap-admin')"),
        "integrations": curl(f"{API_URL}/admin/integrations")[1],
        "runs": running_runs(),
        "queue": queue_depth(),
    }


@pytest.fixture(scope="module")
def fresh(lab):
    """The lab taken down and brought up again, the slow way, once: what down left behind, and what a lab just
    brought up has."""
    cli("down")
    left = {"containers": sh("docker compose ps -a -q").strip(), "state": lab.state_dir.exists()}
    assert "http://127.0.0.1:3000" in cli("up")
    return {"left": left, "fingerprint": lab_fingerprint()}


def test_down_removes_everything_and_up_brings_it_back(lab, fresh):
    assert fresh["left"] == {"containers": "", "state": False}
    assert_healthy(lab)


def test_reset_in_place_brings_back_what_up_brings(lab, fresh):
    """Seven faults at once and what mitigations change (replicas, a PostgreSQL setting, an integration switched
    off, rows written): the reset in place leaves what the lab just brought up had."""
    # Before the faults: proposals-stuck holds the pending proposals' row locks, which the UPDATE would wait on.
    access.sql("UPDATE proposals SET status = 'rejected' WHERE id = (SELECT id FROM proposals ORDER BY id LIMIT 1)")
    access.sql("ALTER SYSTEM SET max_connections = 150")
    for fault in ("bad-deploy", "external-down", "latency", "db-slow", "proposals-stuck", "worker-stuck",
                  "queue-backup"):
        cli("inject", fault)
    lab.compose("up", "-d", "--no-deps", "--scale", "api=3", "--scale", "jobs=2", "api", "jobs")
    access.http("POST", f"{API_URL}/admin/integrations/hub-protocol", {"enabled": False})
    assert lab_fingerprint() != fresh["fingerprint"]

    assert f"({IN_PLACE})" in cli("reset")
    assert lab_fingerprint() == fresh["fingerprint"]
    assert_healthy(lab)
    # Regression: the reset dropped the database under a running Prometheus, which fired DatabaseConnectionFailure
    # at the receiver. Monitoring now comes back after the reset, anew: no alert of the faults or of the reset.
    time.sleep(15)
    assert monitoring.firing() == []


def test_a_lab_without_its_seed_copy_is_not_reset_in_place(lab):
    """Without the copy (Synap's real backend, a lab from before it was kept) reset takes the lab down and up."""
    access.sql(f"ALTER DATABASE {SEED_DATABASE} RENAME TO synap_seed_aside", database="postgres")
    try:
        assert not seed_kept(lab)
    finally:
        access.sql(f"ALTER DATABASE synap_seed_aside RENAME TO {SEED_DATABASE}", database="postgres")
    assert seed_kept(lab)
