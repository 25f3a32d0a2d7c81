"""Warm diagnosis: serve answers the scenario's kept look-ups itself when the alert is queued, into the incident's
folder, before the run's playbook starts; the run does not look again, and the record takes serve's answers in."""

from __future__ import annotations

import json
import time

import pytest
from serve_helpers import INVENTORY, webhook

from synap_play.first_look import plan_folder

pytestmark = pytest.mark.slow

P3 = {"name": "FixtureAlert", "severity": "info", "fingerprint": "73d499566d87aece"}


def test_the_diagnosis_is_recorded_by_serve_before_the_playbook_starts(start_serve, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNAP_PLAY_CACHE_DIR", str(tmp_path / "cache"))
    serve = start_serve()
    # The plan an earlier run of the scenario kept (the diagnose action writes it): one look-up, of serve's own
    # health endpoint, as an external service.
    folder = plan_folder("fixture-flag", INVENTORY, None, {"flag_path": str(tmp_path / "flag")})
    folder.mkdir(parents=True)
    (folder / "fixture-host.json").write_text(json.dumps({
        "host": "fixture-host", "task": "Assess | Look", "written_at": time.time(),
        "sources": {"health": {"module": "synap.ops.external_info",
                               "args": {"endpoints": [{"name": "serve", "url": f"{serve.url}/healthz"}]}}}}))

    [queued] = serve.post(webhook(P3)).body["queued"]
    record = serve.wait_for_record(queued["incident"])
    look = record["first_look"]
    assert look["by"] == "synap-play serve"
    [finding] = look["findings"]
    assert finding["look_up"] == "health" and finding["details"]["endpoints"][0]["reachable"] is True
    # Recorded before the playbook's first task, and not looked up a second time by the run.
    first_task = min(entry["at"] for entry in record["timeline"] if entry["event"] != "first look")
    assert look["done_at"] <= first_task, (look["done_at"], first_task)
    assert not any("first look skipped" in entry["event"] for entry in record["timeline"])
