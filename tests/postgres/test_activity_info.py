"""postgres_activity_info against a real server with real faults, and connection-failure classification."""

from __future__ import annotations

import time

from pg_cluster import APP_USER
from pg_faults import blocking_chain, idle_connections, idle_in_transaction, long_query, saturated, silent_listener


def test_idle_api_connections_are_counted_and_listed(pg, module, superuser_args):
    with idle_connections(pg, 5, application_name="api") as pids:
        time.sleep(1.2)
        result = module("postgres_activity_info", dict(superuser_args, idle_threshold=1))
    assert result["changed"] is False and result["reachable"] is True
    assert result["counts"]["application_name"]["api"] == 5
    assert result["counts"]["user"][APP_USER] >= 5
    assert set(pids) <= {s["pid"] for s in result["idle_sessions"]}
    assert result["connections"]["used"] >= 6 and result["connections"]["max_connections"] == 25
    assert result["server"]["version"].startswith("15")
    assert "PostgreSQL reachable:" in result["msg"] and "api 5" in result["msg"]


def test_idle_in_transaction_and_oldest_transaction(pg, module, superuser_args):
    with idle_in_transaction(pg, application_name="worker") as pid:
        time.sleep(0.5)
        result = module("postgres_activity_info", superuser_args)
    listed = {s["pid"]: s for s in result["idle_in_transaction"]}
    assert pid in listed and listed[pid]["application_name"] == "worker"
    assert listed[pid]["xact_seconds"] >= 0.4
    assert result["oldest_transaction_seconds"] >= 0.4


def test_an_aborted_transaction_is_counted_not_listed_as_holding_locks(pg, module, superuser_args):
    """Regression: its xact_start is null, and a role comparing the listed transactions' ages failed on it."""
    with idle_in_transaction(pg, application_name="failed", aborted=True) as aborted, \
            idle_in_transaction(pg, application_name="open") as open_pid:
        time.sleep(0.5)
        result = module("postgres_activity_info", superuser_args)
    assert [s["pid"] for s in result["idle_in_transaction"]] == [open_pid]
    assert aborted not in {s["pid"] for s in result["idle_in_transaction"]}
    assert result["counts"]["state"]["idle in transaction (aborted)"] == 1
    assert result["oldest_transaction_seconds"] >= 0.4


def test_blocking_chain_is_folded_into_a_tree(pg, module, superuser_args, one_proposal):
    with blocking_chain(pg, one_proposal, waiters=2) as chain:
        result = module("postgres_activity_info", superuser_args)
    assert [r["pid"] for r in result["root_blockers"]] == [chain.holder]
    (root,) = result["blocking_tree"]
    assert root["pid"] == chain.holder and root["application_name"] == "api-holder"

    def pids(node):
        return {node["pid"]} | {p for child in node["blocks"] for p in pids(child)}

    assert pids(root) == {chain.holder, *chain.waiters}
    assert {s["pid"] for s in result["blocked"]} == set(chain.waiters)
    assert any(w["relation"] == "proposals" or w["locktype"] == "transactionid" for w in result["lock_waits"])
    assert "1 blocked chain" in result["msg"] and f"root pid {chain.holder}" in result["msg"]


def test_long_query_is_reported_with_its_text(pg, module, superuser_args):
    with long_query(pg, seconds=30, application_name="jobs") as running:
        time.sleep(1.1)
        result = module("postgres_activity_info", dict(superuser_args, long_query_threshold=1))
    (entry,) = [q for q in result["long_queries"] if q["pid"] == running.pid]
    assert entry["application_name"] == "jobs" and entry["user"] == APP_USER
    assert "pg_sleep" in entry["query"] and entry["query_seconds"] >= 1
    assert entry["wait_event"] == "PgSleep"


def test_superuser_still_answers_at_max_connections(pg, module, superuser_args, app_args):
    with saturated(pg, user=APP_USER, application_name="api") as (conns, refusal):
        assert "reserved" in refusal  # the server really refused an ordinary user
        as_app = module("postgres_activity_info", app_args)
        as_superuser = module("postgres_activity_info", superuser_args)
    assert as_app["reachable"] is False and as_app["failure"] == "too_many_clients"
    assert as_app["changed"] is False and "superuser" in as_app["msg"]
    assert as_superuser["reachable"] is True
    assert as_superuser["connections"]["saturated"] is True
    assert as_superuser["connections"]["available_to_users"] == 0
    assert as_superuser["counts"]["application_name"]["api"] == len(conns)
    assert "SATURATED" in as_superuser["msg"]


def test_completely_full_server_is_classified(pg, module, superuser_args):
    from pg_cluster import SUPERUSER

    with saturated(pg, user=APP_USER) as _app, saturated(pg, user=SUPERUSER, application_name="admin") as (_c, refusal):
        assert "too many clients" in refusal
        result = module("postgres_activity_info", superuser_args)
    assert result["reachable"] is False and result["failure"] == "too_many_clients"


def test_wrong_password_is_auth_failed_and_never_echoed(pg, module):
    result = module("postgres_activity_info", {"dsn": pg.dsn(password="wrong-secret-value")})
    assert result["reachable"] is False and result["failure"] == "auth_failed"
    assert "wrong-secret-value" not in str(result)


def test_missing_database_is_database_missing(pg, module):
    result = module("postgres_activity_info", {"dsn": pg.dsn(db="nope")})
    assert result["failure"] == "database_missing" and result["changed"] is False


def test_silent_host_is_timeout(module):
    with silent_listener() as port:
        result = module("postgres_activity_info", {"dsn": f"postgresql://u:p@127.0.0.1:{port}/synap",
                                                   "connect_timeout": 1})
    assert result["reachable"] is False and result["failure"] == "timeout"


def test_discrete_options_override_the_dsn(pg, module):
    from pg_cluster import SUPERUSER_PASSWORD

    result = module("postgres_activity_info", {"dsn": pg.dsn(password="wrong"), "login_password": SUPERUSER_PASSWORD})
    assert result["reachable"] is True


def test_stopped_server_is_refused(pg, module, superuser_args):
    pg.stop()
    try:
        result = module("postgres_activity_info", superuser_args)
        statements = module("postgres_statements_info", superuser_args)
    finally:
        pg.start()
    assert result["reachable"] is False and result["failure"] == "refused"
    assert result["msg"].startswith("PostgreSQL postgres@127.0.0.1:")
    assert statements["reachable"] is False and statements["failure"] == "refused"
