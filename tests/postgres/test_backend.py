"""postgres_backend: check mode -> real run -> second run, verified in pg_stat_activity; the safety rules."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field

import psycopg
import pytest
from pg_cluster import APP_USER, SUPERUSER
from pg_faults import activity, alive_pids, blocking_chain, idle_connections, idle_in_transaction, long_query, wait_for

LEFT_OUT = "waiting on a lock left out (ending a lock victim frees nothing; end the blocker with root_blockers=true)"


def test_terminate_idle_api_connections_check_real_again(pg, module, superuser_args):
    args = dict(superuser_args, application_names=["api"], states=["idle"], idle_longer_than=0.5)
    with idle_connections(pg, 4, application_name="api") as pids:
        time.sleep(0.7)
        plan = module("postgres_backend", args, check=True)
        assert plan["changed"] is True
        assert sorted(a["pid"] for a in plan["actions"]) == sorted(pids)
        first = plan["actions"][0]
        assert first["action"] == "terminate" and first["application_name"] == "api" and first["user"] == APP_USER
        assert first["description"].startswith(f"terminate pid {first['pid']} (api, idle ")
        assert "application_name api" in first["reasons"] and "state idle" in first["reasons"]
        assert alive_pids(pg, pids) == set(pids), "check mode must not end anything"

        real = module("postgres_backend", args)
        assert real["changed"] is True
        assert {a["result"] for a in real["actions"]} == {"terminated"}
        assert alive_pids(pg, pids) == set()

        again = module("postgres_backend", args)
        assert again["changed"] is False and again["actions"] == []


def test_broad_filter_spares_psql_superuser_and_own_session(pg, module, superuser_args):
    broad = dict(superuser_args, states=["idle", "active", "idle in transaction"], max_sessions=50)
    with idle_connections(pg, 2, application_name="api") as api_pids, \
            idle_connections(pg, 1, application_name="psql") as (human,), \
            idle_connections(pg, 1, application_name="api", user=SUPERUSER) as (admin,):
        result = module("postgres_backend", broad)
        survivors = alive_pids(pg, [human, admin, *api_pids])
    assert survivors == {human, admin}
    assert result["changed"] is True
    reasons = {p["pid"]: p["reason"] for p in result["protected"]}
    assert reasons[human] == "protected application psql"
    assert reasons[admin].startswith("superuser session")
    assert "own session" in reasons.values()
    assert all(a["pid"] not in (human, admin) for a in result["actions"])


def test_own_session_is_spared_even_with_superusers_included(pg, module, superuser_args):
    result = module("postgres_backend", dict(superuser_args, application_names=["synap-play"],
                                             include_superusers=True), check=True)
    assert result["actions"] == [] and result["changed"] is False
    assert [p["reason"] for p in result["protected"]] == ["own session"]


def test_cap_refuses_an_oversized_selection_and_ends_nothing(pg, module, superuser_args):
    with idle_connections(pg, 6, application_name="api") as pids:
        result = module("postgres_backend", dict(superuser_args, application_names=["api"], max_sessions=3))
        assert alive_pids(pg, pids) == set(pids)
    assert result["failed"] is True
    assert "6 sessions, more than max_sessions=3" in result["msg"] and "nothing was ended" in result["msg"]


def test_root_blocker_terminated_and_waiters_proceed(pg, module, superuser_args, one_proposal):
    args = dict(superuser_args, root_blockers=True)
    with blocking_chain(pg, one_proposal, waiters=2) as chain:
        plan = module("postgres_backend", args, check=True)
        assert [a["pid"] for a in plan["actions"]] == [chain.holder]
        assert "root blocker" in plan["actions"][0]["reasons"]
        assert alive_pids(pg, [chain.holder]) == {chain.holder}

        real = module("postgres_backend", args)
        assert real["changed"] is True and [a["pid"] for a in real["actions"]] == [chain.holder]
        wait_for(lambda: chain.finished == set(chain.waiters), what="waiters to get the row lock")
        again = module("postgres_backend", args)
        assert again["changed"] is False and again["actions"] == []
    assert not chain.errors


def test_cancel_long_query_keeps_the_session(pg, module, superuser_args):
    args = dict(superuser_args, mode="cancel", running_longer_than=0.5, query_pattern=r"pg_sleep")
    with long_query(pg, seconds=60, application_name="jobs") as running:
        time.sleep(0.7)
        plan = module("postgres_backend", args, check=True)
        assert [a["pid"] for a in plan["actions"]] == [running.pid]
        assert plan["actions"][0]["description"].startswith(f"cancel pid {running.pid} (jobs, running ")
        assert running.error is None

        real = module("postgres_backend", args)
        assert real["changed"] is True and real["actions"][0]["result"] == "cancelled"
        wait_for(lambda: running.error is not None, what="the query to be cancelled")
        assert "canceling statement due to user request" in running.error
        assert alive_pids(pg, [running.pid]) == {running.pid}, "cancel ends the query, not the session"

        again = module("postgres_backend", args)
        assert again["changed"] is False


def test_cancel_then_terminate_ends_an_idle_transaction(pg, module, superuser_args):
    args = dict(superuser_args, mode="cancel_then_terminate", grace_seconds=0.5, application_names=["worker"])
    with idle_in_transaction(pg, application_name="worker") as pid:
        plan = module("postgres_backend", args, check=True)
        assert [a["pid"] for a in plan["actions"]] == [pid]
        assert "terminate if unchanged after 0.5 s" in plan["actions"][0]["description"]
        assert alive_pids(pg, [pid]) == {pid}

        real = module("postgres_backend", args)
        assert real["changed"] is True
        assert [(a["action"], a["result"]) for a in real["actions"]] == [("cancel", "cancelled"),
                                                                         ("terminate", "terminated")]
        assert alive_pids(pg, [pid]) == set()
        assert module("postgres_backend", args)["changed"] is False


def test_running_longer_than_leaves_lock_victims_and_an_idle_blocker_alone(pg, module, superuser_args, one_proposal):
    # The holder is idle in transaction: not running, so no running_longer_than selects it. Its victims run
    # long only because they wait on its row lock.
    args = dict(superuser_args, running_longer_than=0.5, application_names=["api-holder", "api-waiter"])
    with blocking_chain(pg, one_proposal, waiters=2) as chain:
        time.sleep(0.7)
        plan = module("postgres_backend", args, check=True)
        assert (plan["changed"], plan["actions"], plan["selected_count"]) == (False, [], 0)
        assert sorted(s["pid"] for s in plan["left_out"]) == sorted(chain.waiters)
        assert plan["msg"] == f"would terminate 0 sessions; 2 sessions {LEFT_OUT}"
        for session in plan["left_out"]:
            assert (session["state"], session["wait_event_type"], session["application_name"]) == \
                ("active", "Lock", "api-waiter")
            assert session["blocked_by"] and set(session["blocked_by"]) <= {chain.holder, *chain.waiters}
            held_by = ", ".join(str(pid) for pid in session["blocked_by"])
            assert session["reason"] == (f"waiting on a lock held by pid {held_by}: ending it frees nothing "
                                         "(end the blocker: root_blockers=true)")
        first = next(s for s in plan["left_out"] if s["pid"] == chain.waiters[0])
        assert first["blocked_by"] == [chain.holder]

        real = module("postgres_backend", args)
        assert (real["changed"], real["actions"]) == (False, [])
        assert real["msg"] == f"nothing to terminate 0 sessions; 2 sessions {LEFT_OUT}"
        assert alive_pids(pg, [chain.holder, *chain.waiters]) == {chain.holder, *chain.waiters}

        # Asked for, the victims are selected, and still never the idle holder.
        wanted = module("postgres_backend", dict(args, include_lock_waiters=True), check=True)
        assert sorted(a["pid"] for a in wanted["actions"]) == sorted(chain.waiters)
        assert wanted["left_out"] == []
        for action in wanted["actions"]:
            assert action["reasons"][-1].startswith("waiting on a lock held by pid ")
            assert action["reasons"][-1].endswith(" (include_lock_waiters)")
        assert not chain.finished and not chain.errors


@dataclass
class RunningBlocker:
    holder: int
    waiter: int
    errors: dict[int, str] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)


@contextlib.contextmanager
def running_blocker(pg, proposal_id: str):
    """A takes the row lock and goes on running (a long query in the same transaction); B waits on the row."""
    holder = pg.connect(user=APP_USER, application_name="api-holder")
    waiter = pg.connect(user=APP_USER, application_name="api-waiter")
    holder.execute("BEGIN")
    holder.execute("UPDATE proposals SET updated_at = now() WHERE id = %s", (proposal_id,))
    state = RunningBlocker(holder=holder.info.backend_pid, waiter=waiter.info.backend_pid)

    def execute(conn, sql, *params):
        pid = conn.info.backend_pid
        try:
            conn.execute(sql, params)
            state.finished.add(pid)
        except psycopg.Error as exc:
            state.errors[pid] = str(exc)

    threads = [threading.Thread(target=execute, args=(holder, "SELECT pg_sleep(60)"), daemon=True),
               threading.Thread(target=execute, args=(waiter, "UPDATE proposals SET updated_at = now() WHERE id = %s",
                                                      proposal_id), daemon=True)]
    try:
        threads[0].start()
        wait_for(lambda: (activity(pg, state.holder) or ("",))[0] == "active", what="the holder to run")
        threads[1].start()
        wait_for(lambda: (activity(pg, state.waiter) or (None, None))[1] == "Lock", what="the waiter to block")
        yield state
    finally:
        with pg.connect(application_name="pytest-cleanup") as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (state.holder,))
        for thread in threads:
            thread.join(timeout=10)
        for conn in (holder, waiter):
            with contextlib.suppress(Exception):
                conn.close()


def test_running_longer_than_ends_a_running_blocker_and_never_its_victim(pg, module, superuser_args, one_proposal):
    args = dict(superuser_args, running_longer_than=0.5, application_names=["api-holder", "api-waiter"])
    with running_blocker(pg, one_proposal) as chain:
        time.sleep(0.7)
        plan = module("postgres_backend", args, check=True)
        assert [a["pid"] for a in plan["actions"]] == [chain.holder]
        assert plan["actions"][0]["reasons"][0] == "application_name api-holder"
        assert plan["actions"][0]["reasons"][1].startswith("running ")
        assert [(s["pid"], s["blocked_by"]) for s in plan["left_out"]] == [(chain.waiter, [chain.holder])]
        assert plan["msg"] == f"would terminate 1 session (api-holder 1); 1 session {LEFT_OUT}"

        both = module("postgres_backend", dict(args, include_lock_waiters=True), check=True)
        assert sorted(a["pid"] for a in both["actions"]) == sorted([chain.holder, chain.waiter])
        assert both["left_out"] == []

        real = module("postgres_backend", args)
        assert real["changed"] is True
        assert [(a["pid"], a["result"]) for a in real["actions"]] == [(chain.holder, "terminated")]
        # The blocker gone, its victim gets the row and carries on.
        wait_for(lambda: chain.waiter in chain.finished, what="the waiter to get the row lock")
        assert alive_pids(pg, [chain.holder, chain.waiter]) == {chain.waiter}

        again = module("postgres_backend", args)
        assert (again["changed"], again["actions"], again["left_out"]) == (False, [], [])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "no filter given"),
        ({"query_pattern": "("}, "query_pattern is not a valid regular expression"),
        ({"pids": [1], "max_sessions": 0}, "max_sessions must be at least 1"),
        ({"pids": [1], "mode": "explode"}, "value of mode must be one of"),
    ],
)
def test_bad_input_gets_one_line(module, superuser_args, args, message):
    result = module("postgres_backend", dict(superuser_args, **args))
    assert result["failed"] is True and message in result["msg"] and "\n" not in result["msg"]


def test_unreachable_server_fails_with_the_classification(pg, module):
    result = module("postgres_backend", {"dsn": pg.dsn(db="nope"), "pids": [1]})
    assert result["failed"] is True and result["failure"] == "database_missing"
    assert "(database_missing)" in result["msg"]
