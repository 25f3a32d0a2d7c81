"""The EDA side: the collection's Alertmanager event source on its own, then the real ansible-rulebook
receiving a real Alertmanager payload and running the scenario playbook once per throttle window."""

from __future__ import annotations

import asyncio
import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from alert_helpers import ALERT_MAP, CATALOG, alertmanager_payload

from synap_play.collection import load

ROOT = Path(__file__).resolve().parents[2]
RULEBOOK = ROOT / "extensions" / "eda" / "rulebooks" / "alertmanager.yml"
ANSIBLE_RULEBOOK = Path(sys.executable).with_name("ansible-rulebook")
# The source plugin, run with runpy.run_path as ansible-rulebook runs it. In this process Ansible's collection loader
# is installed (as synap-play installs it), and its path hook claims every file below a collections path, which
# runpy cannot run: so the checkout's own file is run. The source as ansible-rulebook really loads it (from the
# collections path, with no loader) is the rulebook test below, and scripts/check-installed-collection.
load()
alertmanager = SimpleNamespace(**runpy.run_path(str(ROOT / "extensions" / "eda" / "plugins" / "event_source" /
                                                    "alertmanager.py")))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url: str, body, token: str | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_source_plugin_queues_one_event_per_scenario_and_refuses_bad_payloads():
    async def scenario():
        queue: asyncio.Queue = asyncio.Queue()
        port = free_port()
        args = {"host": "127.0.0.1", "port": port, "token": "hook-token", "catalog": str(CATALOG),
                "alert_map": str(ALERT_MAP)}
        server = asyncio.create_task(alertmanager.main(queue, args))
        await asyncio.sleep(0.3)
        url = f"http://127.0.0.1:{port}/alerts"
        call = asyncio.to_thread
        payload = alertmanager_payload(
            {"name": "FixtureAlert", "severity": "warning", "starts_at": "2026-11-29T03:15:00Z", "fingerprint": "a"},
            {"name": "FixtureAlert", "severity": "page", "starts_at": "2026-11-29T03:05:00Z", "fingerprint": "b"},
            {"name": "Mystery", "fingerprint": "m"})
        results = [await call(post, url, payload), await call(post, url, payload, "hook-token"),
                   await call(post, url, b"{oops", "hook-token"),
                   await call(post, url, {"version": "4", "status": "firing", "alerts": []}, "hook-token"),
                   await call(post, url, b'{"version": "4", "status": "\xff"}', "hook-token"),
                   await call(post, url, b" " * (alertmanager.alerts.MAX_PAYLOAD_BYTES + 1), "hook-token")]
        events = [queue.get_nowait() for _event in range(queue.qsize())]
        server.cancel()
        return results, events

    (unauthorised, accepted, not_json, empty, not_utf8, too_big), events = asyncio.run(scenario())
    assert unauthorised == (401, {"error": "missing or wrong bearer token"})
    assert accepted[0] == 202
    assert not_json == (400, {"error": "payload is not JSON: Expecting property name enclosed in double quotes"})
    assert empty == (400, {"error": "payload has no 'alerts' list, or it is empty"})
    assert not_utf8 == (400, {"error": "payload is not UTF-8 text (byte 28 of 31); give an Alertmanager webhook body "
                                       "(JSON, version 4)"})
    assert too_big == (413, {"error": "payload is over the cap of 10 MB; send the alerts in smaller groups "
                                      "(Alertmanager's group_by / max_alerts)"})
    run, ignored = events
    assert run["meta"] == {"endpoint": "/alerts"}
    assert {k: run["synap"][k] for k in ("action", "scenario", "severity", "started_at")} == \
        {"action": "run", "scenario": "fixture-flag", "severity": "P0", "started_at": "2026-11-29T03:05:00Z"}
    assert run["synap"]["playbook"] == str(CATALOG.parent / "playbooks" / "flag.yml")
    assert [a["fingerprint"] for a in run["synap"]["alerts"]] == ["a", "b"]
    assert ignored["synap"] == {"action": "ignore", "reason": "unknown alert", "alert": "Mystery", "fingerprint": "m"}


@pytest.mark.slow
def test_ansible_rulebook_runs_the_scenario_once_per_throttle_window(tmp_path):
    flag = tmp_path / "flag"
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"synap": {
        "hosts": {"fixture-host": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
        "vars": {"flag_path": str(flag), "fixture_database_url": "postgresql://synap@127.0.0.1:5/synap",
                 "synap_inngest_signing_key": "unused"}}}))
    port = free_port()
    variables = tmp_path / "vars.yml"
    variables.write_text(yaml.safe_dump({"synap_eda_host": "127.0.0.1", "synap_eda_port": port}))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               # The rulebook's source reads the fixture catalog and mapping instead of the project's.
               SYNAP_PLAY_PROJECT=str(ROOT), SYNAP_PLAY_INCIDENTS_DIR=str(tmp_path / "incidents"),
               SYNAP_PLAY_LOCK_DIR=str(tmp_path / "locks"))
    rulebook = tmp_path / "rulebook.yml"
    document = yaml.safe_load(RULEBOOK.read_text())
    document[0]["sources"][0]["synap.ops.alertmanager"].update(catalog=str(CATALOG), alert_map=str(ALERT_MAP))
    rulebook.write_text(yaml.safe_dump(document, sort_keys=False))
    log = (tmp_path / "rulebook.log").open("w+")
    proc = subprocess.Popen([str(ANSIBLE_RULEBOOK), "--rulebook", str(rulebook), "-i", str(inventory),
                             "--vars", str(variables), "--print-events"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/alerts"
        deadline = time.monotonic() + 120
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, log.seek(0) or log.read()
                assert time.monotonic() < deadline, "ansible-rulebook did not start listening"
                time.sleep(0.5)
        firing = alertmanager_payload({"name": "FixturePinned", "fingerprint": "p1"},
                                      {"name": "FixtureAlert", "severity": "page", "fingerprint": "p2"})
        assert post(url, firing)[0] == 202
        while not flag.exists():
            assert proc.poll() is None and time.monotonic() < deadline, log.seek(0) or log.read()
            time.sleep(0.5)
        assert post(url, firing)[0] == 202  # Alertmanager's repeat: throttled
        assert post(url, alertmanager_payload({"name": "FixtureAlert", "fingerprint": "r1"}, status="resolved"))[0] == 202
        time.sleep(5)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    log.seek(0)
    output = log.read()
    assert flag.read_text() == "flag raised\n"  # the P0 gate ran the disruptive fix
    assert output.count("PLAY RECAP") == 1, output[-4000:]
    assert "alert FixtureAlert (r1): resolved; nothing to run" in output
    # The run the rulebook started keeps its record, report and lock as synap-play's does (the incident callback).
    [folder] = list((tmp_path / "incidents").iterdir())
    record = json.loads((folder / "incident.json").read_text())
    assert (record["scenario"], record["title"], record["operator"]) == ("fixture-flag", "Fixture flag file",
                                                                       "ansible-rulebook")
    assert record["status"] == "resolved" and record["exit_code"] == 0 and record["lock"]["where"]
    assert record["follow_ups"] == ["Find out why the flag went missing"] and len(record["alerts"]) == 2
    assert [p["name"] for p in record["phases"]] == ["Acknowledge", "Assess", "Mitigate", "Resolve", "Document"]
    assert [(a["status"], a["class"], a["changed"]) for a in record["actions"]] == [("done", "disruptive", True)]
    assert (folder / "report.md").is_file()
