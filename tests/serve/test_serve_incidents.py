"""Which incident takes a repeat, from the records and serve's notes alone (what a restarted serve knows)."""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta

import pytest
from click.testing import CliRunner
from serve_helpers import ALERT_MAP, CATALOG, INVENTORY, webhook

from synap_play.collection import load

load()
from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import iso, utcnow  # noqa: E402

from synap_play.serve.incidents import IncidentIndex  # noqa: E402
from synap_play.serve.notes import append_note  # noqa: E402

KEY = ("fixture-flag", "staging", None)
ALERT = {"name": "FixtureAlert", "fingerprint": "73d499566d87aece"}


def write_record(root, incident_id, status, *, ended_ago=timedelta(minutes=5), inventory="staging", **fields):
    folder = root / incident_id
    folder.mkdir(parents=True)
    ended = None if status == "running" else iso(utcnow() - ended_ago)
    record = {"id": incident_id, "scenario": "fixture-flag", "inventory": inventory, "limit": None,
              "severity": "P1", "status": status, "started_at": "2026-12-02T06:07:35Z", "ended_at": ended,
              "exit_code": None, "check_mode": False, "alerts": [ALERT], "actions": [], **fields}
    (folder / "incident.json").write_text(json.dumps(record))
    return folder


@pytest.mark.parametrize(("status", "takes"), [
    ("needs approval", True), ("unresolved", True), ("could not verify", True),
    ("resolved", False), ("healthy", False), ("usage error", False),
    # No verdict: the next firing runs the scenario again.
    ("interrupted", False), ("locked out", False), ("failed", False),
])
def test_an_ended_incident_takes_repeats_while_it_needs_a_human(tmp_path, status, takes):
    write_record(tmp_path, "20261202T060735Z-fixture-flag-aaaaaa", status)
    index = IncidentIndex(tmp_path)
    index.refresh()
    assert index.latest(KEY).takes_repeats() is takes


def test_only_while_its_alerts_fire_and_for_a_day_at_most(tmp_path):
    folder = write_record(tmp_path, "20261202T060735Z-fixture-flag-aaaaaa", "needs approval")
    write_record(tmp_path, "20261201T060735Z-fixture-flag-bbbbbb", "needs approval", ended_ago=timedelta(hours=25))
    index = IncidentIndex(tmp_path)
    index.refresh()
    assert [i.id for i in index.open_incidents()] == ["20261202T060735Z-fixture-flag-aaaaaa"]
    append_note(folder, {"event": "resolved", "at": iso(utcnow()), "alerts": [ALERT]})
    index = IncidentIndex(tmp_path)  # as a restarted serve reads it
    index.refresh()
    assert index.open_incidents() == []


def test_the_newest_incident_decides_and_diagnosis_only_runs_are_left_out(tmp_path):
    write_record(tmp_path, "20261202T060735Z-fixture-flag-aaaaaa", "needs approval")
    write_record(tmp_path, "20261202T070000Z-fixture-flag-bbbbbb", "resolved")  # someone fixed it by hand
    write_record(tmp_path, "20261202T080000Z-fixture-flag-cccccc", "diagnosed", check_mode=True)
    write_record(tmp_path, "20261202T090000Z-fixture-flag-dddddd", "needs approval", inventory="lab")
    index = IncidentIndex(tmp_path)
    index.refresh()
    assert index.latest(KEY).id == "20261202T070000Z-fixture-flag-bbbbbb"
    assert not index.latest(KEY).takes_repeats()
    assert index.latest(("fixture-flag", "lab", None)).takes_repeats()


def test_a_running_record_is_believed_while_it_is_written_to(tmp_path):
    folder = write_record(tmp_path, "20261202T060735Z-fixture-flag-aaaaaa", "running")
    index = IncidentIndex(tmp_path)
    index.refresh()
    assert index.latest(KEY).takes_repeats()
    # A run that died (SIGKILL) leaves its record running: untouched for a quarter of an hour it holds nothing.
    old = time.time() - 16 * 60
    os.utime(folder / "incident.json", (old, old))
    index = IncidentIndex(tmp_path)
    index.refresh()
    assert not index.latest(KEY).takes_repeats()


def test_a_run_serve_started_is_alive_as_long_as_its_process(tmp_path):
    folder = write_record(tmp_path, "20261202T060735Z-fixture-flag-aaaaaa", "running")
    append_note(folder, {"event": "started", "at": iso(utcnow()), "pid": os.getpid()})
    index = IncidentIndex(tmp_path)
    index.refresh()
    assert index.latest(KEY).takes_repeats()
    append_note(folder, {"event": "ended", "at": iso(utcnow()), "exit_code": -9, "status": None})
    index = IncidentIndex(tmp_path)
    index.refresh()
    assert not index.latest(KEY).takes_repeats()


def test_a_new_folder_is_seen_once_its_record_is_written(tmp_path):
    index = IncidentIndex(tmp_path)
    index.refresh()
    (tmp_path / "20261202T060735Z-fixture-flag-aaaaaa").mkdir()  # a run setting up: no record yet
    index.refresh()
    assert index.latest(KEY) is None
    (tmp_path / "20261202T060735Z-fixture-flag-aaaaaa").rmdir()
    write_record(tmp_path, "20261202T060735Z-fixture-flag-aaaaaa", "running")
    index.refresh()
    assert index.latest(KEY).state == "running"


# -- the id serve gives a run ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("payload", "incident_id", "message"), [
    (webhook({"name": "FixtureAlert"}), "20261202T060735Z-fixture-slow-abcdef",
     "Error: --incident-id '20261202T060735Z-fixture-slow-abcdef' is not an incident id of fixture-flag "
     "(YYYYMMDDTHHMMSSZ-fixture-flag-<6 hex>)"),
    (webhook({"name": "FixtureAlert"}, {"name": "FixtureSlow"}), "20261202T060735Z-fixture-flag-abcdef",
     "Error: --incident-id names one incident, but the alerts map to 2 scenarios"),
])
def test_alert_takes_an_incident_id_only_for_one_run_of_its_scenario(incidents_dir, payload, incident_id, message):
    from synap_play.alert_cli import alert

    result = CliRunner().invoke(alert, ["--payload", "-", "--incident-id", incident_id, "--catalog", str(CATALOG),
                                        "--alert-map", str(ALERT_MAP), "-i", str(INVENTORY),
                                        "--incidents-dir", str(incidents_dir)],
                                input=json.dumps(payload), catch_exceptions=False)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == message
    assert not incidents_dir.exists() or list(incidents_dir.iterdir()) == []
