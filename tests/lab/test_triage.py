"""`synap-play triage` on the lab: for each of the ten faults (and the healthy lab) the scenario the runbook would
pick comes first, with the severity the rules give; the healthy lab matches nothing.

With SYNAP_PLAY_RECORD_TRIAGE=1 each run's look-ups are written to tests/triage/recorded/<fault>.json, which
tests/triage/test_triage_rules.py replays without the lab (re-record after changing roles/triage's look-ups).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from labtools import ROOT, Load, cli, eventually, latency_seen_by_prometheus, play

from synap_play.lab import access, faults

pytestmark = pytest.mark.lab
RECORDED = ROOT / "tests" / "triage" / "recorded"
EVENTS_WHILE_HUNG = 20
SETTLE_SECONDS = 8  # past the lab's time thresholds and Prometheus' 5 s window
# How slow the missing index makes the API under load depends on how busy the machine is: the triage waits for
# Prometheus (which it reads) to see it, as the rehearsals do, rather than assume it after the settling time.
SEEN = {"latency": latency_seen_by_prometheus}
# What the runbook would pick for each fault, and the severity its definitions give (playbooks/triage-rules.yml).
EXPECTED = {
    "bad-deploy": ("high-error-rate", "P1"),
    "external-down": ("high-error-rate", "P1"),
    "queue-backup": ("worker-queue-backup", "P2"),
    "worker-stuck": ("worker-queue-backup", "P2"),
    "db-slow": ("worker-queue-backup", "P2"),
    "postgres-down": ("database-connection-failure", "P0"),
    "connection-exhaustion": ("database-connection-failure", "P0"),
    "connection-leak": ("database-connection-failure", "P2"),
    "latency": ("elevated-latency", "P2"),
    "proposals-stuck": ("proposal-system-failure", "P1"),
    "healthy": (None, None),
}


def look_ups(record: dict) -> dict:
    """The triage's look-ups as its playbook answered them: a finding each, a failed one an error."""
    sources = {f["look_up"]: f["details"] for f in record["findings"]
               if f.get("look_up") and f["phase"] == "Assess" and f["task"] != "first look"}
    for error in record["errors"]:
        if error.get("look_up"):
            sources.setdefault(error["look_up"], {"failed": True, "msg": error["msg"]})
    return sources


def slimmed(sources: dict) -> dict:
    """What a recording keeps: the look-ups without the log lines and event lists no rule reads (they are most of
    the bytes, and log lines of other programs are no fixture)."""
    sources = json.loads(json.dumps(sources))
    for log in ((sources.get("services") or {}).get("logs") or {}).values():
        if isinstance(log, dict):
            log.pop("tail", None)
            for match in (log.get("matches") or {}).values():
                match.pop("last", None)
    if isinstance(sources.get("inngest"), dict):
        sources["inngest"].pop("events", None)
    return sources


def test_the_verdict_of_a_check_that_cannot_be_made_is_never_healthy(lab, tmp_path):
    """Inngest does not answer: what the rules read from it is unknown, so triage is not healthy."""
    cli("reset")
    code, record = triage_with(tmp_path, "-e", "synap_inngest_url=http://127.0.0.1:9")
    verdict = record["triage"]
    assert code in (3, 6) and not verdict["healthy"], verdict
    assert "inngest" in verdict["unread"]


def triage_with(tmp_path: Path, *args: str) -> tuple[int, dict]:
    return play("triage", *args, incidents=tmp_path / "incidents")


@pytest.mark.parametrize("name", list(EXPECTED))
def test_triage_ranks_the_runbooks_scenario_first_with_its_severity(name, lab, tmp_path):
    cli("reset")
    fault = faults.FAULTS.get(name)
    traffic = Load(20)  # production has traffic: without it the error rate and p95 are not measured
    try:
        if fault:
            faults.inject(lab, name)
            if fault.traffic == "events":
                access.send_events(faults.ai_requests(EVENTS_WHILE_HUNG))
        time.sleep(SETTLE_SECONDS)
        if name in SEEN:
            eventually(SEEN[name], timeout=120)
        code, record = triage_with(tmp_path)
    finally:
        traffic.stop()
        if name in faults.active(lab):
            faults.clear(lab, name)
    verdict = record["triage"]
    scenario, severity = EXPECTED[name]
    if os.environ.get("SYNAP_PLAY_RECORD_TRIAGE"):
        RECORDED.mkdir(parents=True, exist_ok=True)
        (RECORDED / f"{name}.json").write_text(json.dumps(
            {"fault": name, "expect": {"scenario": scenario, "severity": severity},
             "settings": verdict["settings"], "sources": slimmed(look_ups(record))}, indent=1, sort_keys=True) + "\n")
    assert record["scenario"] == "triage" and record["check_mode"] is True
    if scenario is None:
        assert code == 0 and verdict["healthy"], json.dumps(verdict, indent=1)[:3000]
        return
    assert code == 3, json.dumps(verdict, indent=1)[:3000]
    first = verdict["matched"][0]
    assert (first["scenario"], first["severity"]) == (scenario, severity), json.dumps(verdict, indent=1)[:3000]
    assert first["evidence"] and verdict["commands"][0] == f"synap-play {scenario} -i lab --severity {severity}"
