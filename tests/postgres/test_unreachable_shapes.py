"""The PostgreSQL info modules when the server cannot be read: the failure named, every documented field null.

Refused (nothing listens), a wrong password and a missing database, for each of postgres_activity_info,
postgres_statements_info and synap_proposals_info; then one part of a diagnosis failing while the others are read.
"""

from __future__ import annotations

import importlib
import socket

import psycopg
import pytest
import yaml
from pg_cluster import APP_USER

MODULES = ("postgres_activity_info", "postgres_statements_info", "synap_proposals_info")
FRAME = {"changed", "reachable", "failure", "failures", "msg", "error"}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def code(name):
    return importlib.import_module(f"ansible_collections.synap.ops.plugins.modules.{name}")


def assert_nothing_read(name, result, failure):
    documented = yaml.safe_load(code(name).RETURN)
    assert result.get("failed") is not True and result["changed"] is False, result
    assert result["reachable"] is False and result["failure"] == failure, result
    assert set(documented) <= set(result), sorted(set(documented) - set(result))
    assert all(result[key] is None for key in set(documented) - FRAME), {
        key: result[key] for key in set(documented) - FRAME if result[key] is not None}
    assert list(result["failures"]) == ["connection"] and result["error"]
    assert result["msg"].startswith("PostgreSQL ") and f"({failure})" in result["msg"]


@pytest.mark.parametrize("name", MODULES)
def test_refused(module, name):
    port = closed_port()
    result = module(name, {"dsn": f"postgresql://synap:hidden-pw@127.0.0.1:{port}/synap"})
    assert_nothing_read(name, result, "refused")
    assert f"synap@127.0.0.1:{port}/synap" in result["msg"] and "hidden-pw" not in str(result)


@pytest.mark.parametrize("name", MODULES)
def test_wrong_password(pg, module, name):
    result = module(name, {"dsn": pg.dsn(user=APP_USER, password="wrong-secret-value")})
    assert_nothing_read(name, result, "auth_failed")
    assert "wrong-secret-value" not in str(result) and "check the user and password" in result["msg"]


@pytest.mark.parametrize("name", MODULES)
def test_database_missing(pg, module, name):
    result = module(name, {"dsn": pg.dsn(db="no_such_db")})
    assert_nothing_read(name, result, "database_missing")
    assert "/no_such_db" in result["msg"]


@pytest.mark.parametrize(("text", "kind"), [
    ('could not translate host name "db.invalid" to address: Name or service not known', "dns"),
    ("server does not support SSL, but SSL was required", "tls"),
    ("SSL error: certificate verify failed", "tls"),
    ('no pg_hba.conf entry for host "10.0.0.1", user "u", database "d", SSL encryption', "auth_failed"),
    ("connection refused", "refused"),
])
def test_connect_errors_are_classified(text, kind):
    from ansible_collections.synap.ops.plugins.module_utils.postgres import FAILURE_ADVICE, classify_connect_error

    assert classify_connect_error(text) == kind and kind in FAILURE_ADVICE


def test_unresolvable_host_is_dns(module):
    result = module("postgres_activity_info", {"dsn": "postgresql://u:p@db.invalid:5432/synap"})
    assert_nothing_read("postgres_activity_info", result, "dns")


class FailingCursor:
    """A real cursor whose statements containing ``fragment`` fail as a statement timeout would."""

    def __init__(self, cursor, fragment):
        self.cursor = cursor
        self.fragment = fragment

    def execute(self, statement, params=None):
        if self.fragment in str(statement):
            raise psycopg.errors.QueryCanceled("canceling statement due to statement timeout")
        return self.cursor.execute(statement, params)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.cursor.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self.cursor, name)


class FailingConnection:
    def __init__(self, conn, fragment):
        self.conn = conn
        self.fragment = fragment

    def cursor(self):
        return FailingCursor(self.conn.cursor(), self.fragment)

    def __getattr__(self, name):
        return getattr(self.conn, name)


def test_a_failed_part_is_null_and_the_others_are_read(pg, monkeypatch, superuser_args):
    from ansible_collections.synap.ops.plugins.module_utils import postgres

    activity = code("postgres_activity_info")
    real_connect = postgres.connect

    def connect(params):
        conn, failure = real_connect(params)
        return FailingConnection(conn, "FROM pg_locks"), failure

    monkeypatch.setattr(postgres, "connect", connect)
    params = {key: spec.get("default") for key, spec in activity.argument_spec().items()}
    params.update(superuser_args)
    result = activity.gather(params)
    assert result["reachable"] is False and result["failure"] == "query_failed"
    assert list(result["failures"]) == ["lock_waits"], result["failures"]
    assert "statement timeout" in result["failures"]["lock_waits"]
    assert result["lock_waits"] is None
    assert result["connections"]["max_connections"] == 25 and isinstance(result["idle_sessions"], list)
    assert result["database_size_bytes"] > 0 and result["database"] == "synap"
    assert result["msg"].startswith("PostgreSQL reachable: ") and "NOT READ" in result["msg"]
    assert "lock_waits: canceling statement" in result["msg"]
