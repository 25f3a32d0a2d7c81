"""Which incident takes a repeat, from the records and serve's notes alone (what a restarted serve knows)."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from serve_helpers import ALERT_MAP, CATALOG, INVENTORY, webhook

from synap_play.collection import load

load()
from ansible_collections.synap.ops.plugins.plugin_utils.alerts import load_mapping, parse_payload  # noqa: E402
from ansible_collections.synap.ops.plugins.plugin_utils.catalog import load_catalog  # noqa: E402
from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import iso, utcnow  # noqa: E402

from synap_play.serve.incidents import IncidentIndex  # noqa: E402
from synap_play.serve.intake import Intake  # noqa: E402
from synap_play.serve.metrics import ServeMetrics  # noqa: E402
from synap_play.serve.notes import append_note, read_notes  # noqa: E402
from synap_play.serve.settings import Settings  # noqa: E402

KEY = ("fixture-flag", "staging", None)
STARTS_AT = "2026-12-02T06:07:35Z"  # the startsAt webhook() sends
ALERT = {"name": "FixtureAlert", "fingerprint": "73d499566d87aece", "starts_at": STARTS_AT}


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


# -- Alertmanager re-sending a firing the incident already ran for ------------------------------------------------
CLOSED_ID = "20261202T060740Z-fixture-flag-aaaaaa"
ENDED_AT = datetime(2026, 12, 2, 6, 10, tzinfo=UTC)


class Queue:
    """The run queue, running nothing: what the intake queued."""

    full = False
    waiting = 0

    def __init__(self):
        self.jobs = []

    def put(self, job):
        self.jobs.append(job)


def intake_over(root) -> Intake:
    """The intake as a (re)started serve builds it over the incidents folder."""
    settings = Settings(host="127.0.0.1", port=0, token=None, inventory="staging", incidents_dir=root,
                        catalog=CATALOG, alert_map=ALERT_MAP, limit=None, extra_vars=(), operator="tester",
                        max_parallel=1, queue_size=10, stop_timeout=5)
    catalog = load_catalog(CATALOG)
    index = IncidentIndex(root)
    index.refresh()
    return Intake(settings, catalog, load_mapping(ALERT_MAP, catalog), index, Queue(), ServeMetrics())


def post(intake, *alerts, minutes_after_end: float) -> dict:
    received_at = ENDED_AT + timedelta(minutes=minutes_after_end)
    status, answer = intake.take(intake.prepare(parse_payload(json.dumps(webhook(*alerts)), received_at)), received_at)
    assert status == 202
    return answer


def closed_incident(root, status="resolved", starts_at=STARTS_AT, **fields):
    return write_record(root, CLOSED_ID, status, ended_at=iso(ENDED_AT),
                        alerts=[{**ALERT, "starts_at": starts_at}], **fields)


def queued_note(root, incident_id) -> dict:
    return next(n for n in read_notes(root / incident_id) if n["event"] == "queued")


# The record keeps startsAt to the second with a Z; one written otherwise still names the same firing.
@pytest.mark.parametrize("starts_at", [STARTS_AT, "2026-12-02T06:07:35.250+00:00"])
def test_a_resend_after_a_verified_resolution_is_noted_on_that_incident_not_run_again(tmp_path, starts_at):
    closed_incident(tmp_path, starts_at=starts_at)
    intake = intake_over(tmp_path)
    answer = post(intake, {"name": "FixtureAlert"}, minutes_after_end=4)
    assert answer["queued"] == [] and intake.runs.jobs == []
    assert answer["repeats"] == [{"incident": CLOSED_ID, "scenario": "fixture-flag", "state": "ended",
                                  "alerts": ["FixtureAlert"], "after_close": True}]
    [repeat] = read_notes(tmp_path / CLOSED_ID)
    assert repeat["event"] == "repeat" and repeat["after_close"] is True and repeat["minutes_after_end"] == 4.0
    assert [p.name for p in tmp_path.iterdir()] == [CLOSED_ID]
    # A restarted serve reads the same from the folder: the next re-send goes to the same incident.
    intake = intake_over(tmp_path)
    assert post(intake, {"name": "FixtureAlert"}, minutes_after_end=9)["repeats"][0]["incident"] == CLOSED_ID
    summary = intake_over(tmp_path).index.get(CLOSED_ID).summary()
    assert (summary["open"], summary["repeats"], summary["repeats_after_close"]) == (False, 2, 2)
    assert [p.name for p in tmp_path.iterdir()] == [CLOSED_ID]


@pytest.mark.parametrize(("status", "after_close"), [
    ("resolved", True), ("healthy", True),
    ("needs approval", False),  # it still takes repeats: noted as any repeat
])
def test_an_incident_with_a_verdict_takes_the_resends_of_its_firing(tmp_path, status, after_close):
    closed_incident(tmp_path, status)
    answer = post(intake_over(tmp_path), {"name": "FixtureAlert"}, minutes_after_end=2)
    assert answer["queued"] == []
    assert answer["repeats"][0]["incident"] == CLOSED_ID
    assert answer["repeats"][0].get("after_close", False) is after_close


@pytest.mark.parametrize("status", ["interrupted", "failed", "locked out", "usage error"])
def test_a_resend_after_a_run_without_a_verdict_runs_the_scenario_again(tmp_path, status):
    closed_incident(tmp_path, status)
    intake = intake_over(tmp_path)
    answer = post(intake, {"name": "FixtureAlert"}, minutes_after_end=2)
    assert answer["repeats"] == []
    [queued] = answer["queued"]
    assert [job.id for job in intake.runs.jobs] == [queued["incident"]]
    assert "still_firing_after" not in queued_note(tmp_path, queued["incident"])
    assert read_notes(tmp_path / CLOSED_ID) == []


def test_a_firing_that_outlives_the_grace_opens_an_incident_that_says_so(tmp_path):
    closed_incident(tmp_path)
    intake = intake_over(tmp_path)
    answer = post(intake, {"name": "FixtureAlert"}, minutes_after_end=16)
    [queued] = answer["queued"]
    assert answer["repeats"] == [] and read_notes(tmp_path / CLOSED_ID) == []
    assert queued["still_firing_after"] == queued_note(tmp_path, queued["incident"])["still_firing_after"] == [
        {"incident": CLOSED_ID, "status": "resolved", "ended_at": "2026-12-02T06:10:00Z", "minutes": 16.0,
         "alerts": ["FixtureAlert"]}]
    # The new incident now holds that firing: the next re-send is its repeat, also after a restart.
    assert post(intake_over(tmp_path), {"name": "FixtureAlert"}, minutes_after_end=17)["repeats"] == [
        {"incident": queued["incident"], "scenario": "fixture-flag", "state": "queued", "alerts": ["FixtureAlert"]}]


def test_a_refire_with_a_new_starts_at_opens_a_new_incident(tmp_path):
    closed_incident(tmp_path)
    answer = post(intake_over(tmp_path), {"name": "FixtureAlert", "starts_at": "2026-12-02T06:11:05Z"},
                  minutes_after_end=2)
    [queued] = answer["queued"]
    assert answer["repeats"] == [] and "still_firing_after" not in queued
    assert queued_note(tmp_path, queued["incident"])["alerts"][0]["starts_at"] == "2026-12-02T06:11:05Z"


def test_a_new_alert_beside_a_resend_runs_the_scenario_with_both(tmp_path):
    closed_incident(tmp_path)
    intake = intake_over(tmp_path)
    answer = post(intake, {"name": "FixtureAlert"}, {"name": "FixtureAlert", "fingerprint": "0123456789abcdef"},
                  minutes_after_end=2)
    [queued] = answer["queued"]
    assert answer["repeats"] == []
    note = queued_note(tmp_path, queued["incident"])
    assert sorted(a["fingerprint"] for a in note["alerts"]) == ["0123456789abcdef", "73d499566d87aece"]
    assert [(e["incident"], e["minutes"]) for e in note["still_firing_after"]] == [(CLOSED_ID, 2.0)]
    assert len(intake.runs.jobs) == 1


def test_a_resend_is_told_by_the_senders_starts_at_even_one_in_the_future(tmp_path):
    # Prometheus' clock ahead of serve's: the incident counts from the arrival, the re-sends carry the sender's.
    intake = intake_over(tmp_path)
    future = iso(ENDED_AT - timedelta(minutes=2))
    [queued] = post(intake, {"name": "FixtureAlert", "starts_at": future}, minutes_after_end=-3)["queued"]
    [alert] = queued_note(tmp_path, queued["incident"])["alerts"]
    assert (alert["starts_at"], alert["sent_starts_at"]) == ("2026-12-02T06:07:00Z", future)
    # Its run resolved it; its record names the alert as the run saw it.
    record = tmp_path / queued["incident"] / "incident.json"
    record.write_text(json.dumps({"id": queued["incident"], "scenario": "fixture-flag", "inventory": "staging",
                                  "limit": None, "status": "resolved", "ended_at": iso(ENDED_AT),
                                  "alerts": [{**ALERT, "starts_at": "2026-12-02T06:07:01Z"}], "actions": []}))
    answer = post(intake_over(tmp_path), {"name": "FixtureAlert", "starts_at": future}, minutes_after_end=5)
    assert answer["queued"] == []
    assert answer["repeats"][0]["incident"] == queued["incident"] and answer["repeats"][0]["after_close"]


def test_a_more_severe_alert_raises_the_open_incident_with_a_run_at_its_severity(tmp_path):
    # The lab's pool exhaustion: the api's health probe fails first (critical: P1), then the pool alert (P0).
    intake = intake_over(tmp_path)
    [first] = post(intake, {"name": "FixtureAlert", "severity": "critical"}, minutes_after_end=0)["queued"]
    assert first["severity"] == "P1"
    pool = {"name": "FixtureAlert", "severity": "page", "fingerprint": "0123456789abcdef"}
    answer = post(intake, pool, minutes_after_end=0.001)  # the same second: either id may sort last
    [raised] = answer["queued"]
    assert answer["repeats"] == [] and raised["severity"] == "P0"
    assert [job.id for job in intake.runs.jobs] == [first["incident"], raised["incident"]]
    assert queued_note(tmp_path, raised["incident"])["raised_from"] == {"incident": first["incident"], "severity": "P1"}
    [note] = [n for n in read_notes(tmp_path / first["incident"]) if n["event"] == "raised"]
    assert (note["severity"], note["run"], note["because"]) == ("P0", raised["incident"], ["FixtureAlert"])
    # From then on the raised run holds the scenario's alerts, also for a restarted serve: a repeat of either
    # alert, or a less severe one, is its repeat.
    for taker in (intake, intake_over(tmp_path)):
        for alert in (pool, {"name": "FixtureAlert", "severity": "critical"}, {"name": "FixtureAlert"}):
            answer = post(taker, alert, minutes_after_end=0.2)
            assert answer["queued"] == [] and answer["repeats"][0]["incident"] == raised["incident"], answer
    summary = intake.index.get(first["incident"]).summary()
    assert summary["raised_to"] == raised["incident"] and summary["open"] is True  # still queued: in flight
    # Once the raised incident's own run ended needing a human, it is no longer open: the raised run is.
    (tmp_path / first["incident"] / "incident.json").write_text(json.dumps({
        "id": first["incident"], "scenario": "fixture-flag", "inventory": "staging", "limit": None, "severity": "P1",
        "status": "needs approval", "ended_at": iso(utcnow()), "alerts": [ALERT], "actions": []}))
    assert not intake_over(tmp_path).index.get(first["incident"]).takes_repeats()


def test_an_alert_no_more_severe_is_a_repeat_and_an_unknown_severity_is_not_raised(tmp_path):
    intake = intake_over(tmp_path)
    [first] = post(intake, {"name": "FixtureAlert", "severity": "critical"}, minutes_after_end=0)["queued"]
    for label in ("critical", "warning"):
        answer = post(intake, {"name": "FixtureAlert", "severity": label, "fingerprint": "0123456789abcdef"},
                      minutes_after_end=0.1)
        assert answer["queued"] == [] and answer["repeats"][0]["incident"] == first["incident"]
    # A run whose record does not say its severity (written by an older synap-play, say): nothing to compare with.
    write_record(tmp_path, "20261202T070000Z-fixture-flag-cccccc", "needs approval", severity=None)
    answer = post(intake_over(tmp_path), {"name": "FixtureAlert", "severity": "page"}, minutes_after_end=0.2)
    assert answer["queued"] == [] and answer["repeats"][0]["incident"] == "20261202T070000Z-fixture-flag-cccccc"
