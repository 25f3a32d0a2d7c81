"""postgres_setting: ALTER SYSTEM SET/RESET + reload, check -> real -> again, verified in the server."""

from __future__ import annotations

import pytest


def running_value(pg, name):
    with pg.connect(application_name="pytest-observer") as conn:
        return conn.execute("SELECT setting FROM pg_settings WHERE name = %s", (name,)).fetchone()[0]


def override(pg, name):
    with pg.connect(application_name="pytest-observer") as conn:
        row = conn.execute("SELECT setting FROM pg_file_settings WHERE name = %s "
                           "AND sourcefile LIKE '%%postgresql.auto.conf'", (name,)).fetchone()
    return row[0] if row else None


@pytest.fixture
def clean_overrides(pg):
    yield
    with pg.connect() as conn:
        conn.execute("ALTER SYSTEM RESET ALL")
        conn.execute("SELECT pg_reload_conf()")


def test_reloadable_setting_check_real_again(pg, module, superuser_args, clean_overrides):
    args = dict(superuser_args, name="idle_in_transaction_session_timeout", value="5min")
    plan = module("postgres_setting", args, check=True)
    assert plan["changed"] is True and plan["restart_required"] is False
    assert plan["actions"][0]["statement"] == "ALTER SYSTEM SET idle_in_transaction_session_timeout = '5min'"
    assert running_value(pg, args["name"]) == "0" and override(pg, args["name"]) is None

    real = module("postgres_setting", args)
    assert real["changed"] is True and real["old_value"] == "0" and real["new_value"] == "300000"
    assert real["unit"] == "ms" and real["restart_required"] is False
    assert running_value(pg, "idle_in_transaction_session_timeout") == "300000"

    again = module("postgres_setting", dict(args, value="300s"))  # same value, other unit
    assert again["changed"] is False and again["actions"] == []

    reset_plan = module("postgres_setting", dict(superuser_args, name=args["name"], state="absent"), check=True)
    assert reset_plan["changed"] is True and override(pg, args["name"]) == "5min"
    reset = module("postgres_setting", dict(superuser_args, name=args["name"], state="absent"))
    assert reset["changed"] is True and reset["new_value"] == "0" and override(pg, args["name"]) is None
    assert module("postgres_setting", dict(superuser_args, name=args["name"], state="absent"))["changed"] is False


def test_max_connections_needs_a_restart(pg, module, superuser_args, clean_overrides):
    args = dict(superuser_args, name="max_connections", value="200")
    plan = module("postgres_setting", args, check=True)
    assert plan["changed"] is True and plan["restart_required"] is True and override(pg, "max_connections") is None

    real = module("postgres_setting", args)
    assert real["changed"] is True and real["restart_required"] is True
    assert real["old_value"] == real["new_value"] == "25" and real["configured_value"] == "200"
    assert "restart required" in real["msg"] and override(pg, "max_connections") == "200"

    again = module("postgres_setting", args)
    assert again["changed"] is False and again["restart_required"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"name": "max_connection", "value": "1"}, "unknown setting 'max_connection'"),
        ({"name": "work_mem", "value": "lots"}, "work_mem: 'lots' is not a number"),
        ({"name": "work_mem"}, "value is required with state=present"),
        ({"name": "wal_level", "value": "loud"}, "is not one of"),
        ({"name": "x; DROP TABLE proposals", "value": "1"}, "is not a setting name"),
        ({"name": "block_size", "value": "16384"}, "cannot be changed with ALTER SYSTEM"),
    ],
)
def test_bad_input_gets_one_line(module, superuser_args, args, message):
    result = module("postgres_setting", dict(superuser_args, **args))
    assert result["failed"] is True and message in result["msg"] and "\n" not in result["msg"]


def test_non_superuser_gets_an_actionable_message(module, app_args):
    result = module("postgres_setting", dict(app_args, name="work_mem", value="8MB"))
    assert result["failed"] is True and "superuser" in result["msg"]
