"""The EDA side: the collection's Alertmanager event source on its own, then the real ansible-rulebook
receiving real Alertmanager payloads and running the scenario playbook once per throttle window, its run
holding the mitigator lock (a real PostgreSQL's advisory lock) and writing one incident record."""

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
# A scenario whose playbook holds the lock for a few seconds, with its catalog beside it (tests/alerts/data/eda).
EDA_CATALOG = Path(__file__).resolve().parent / "data" / "eda" / "scenarios.yml"
EDA_ALERT_MAP = EDA_CATALOG.with_name("alerts.yml")
ANSIBLE_RULEBOOK = Path(sys.executable).with_name("ansible-rulebook")
# The source plugin, run with runpy.run_path as ansible-rulebook runs it. In this process Ansible's collection loader
# is installed (as synap-play installs it), and its path hook claims every file below a collections path, which
# runpy cannot run: so the checkout's own file is run. The source as ansible-rulebook really loads it (from the
# collections path, with no loader) is the rulebook test below, and scripts/check-installed-collection.
load()
from ansible_collections.synap.ops.plugins.plugin_utils import mitigator_lock  # noqa: E402

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


def test_source_makes_the_runs_keep_the_record_and_the_lock(monkeypatch, tmp_path):
    """ansible-rulebook's runs start in a temporary project folder: the source hands them the configuration
    ansible-rulebook read, with the incident callback enabled, and a records folder that outlives the job."""
    from ansible import constants

    for name in ("ANSIBLE_CONFIG", "ANSIBLE_CALLBACKS_ENABLED", "SYNAP_PLAY_INCIDENTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "CONFIG_FILE", str(ROOT / "ansible.cfg"))
    monkeypatch.setattr(constants, "CALLBACKS_ENABLED", ["ansible.posix.profile_tasks"])
    assert alertmanager.prepare_runs() == [f"ANSIBLE_CONFIG={ROOT / 'ansible.cfg'}",
                                           "ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks,synap.ops.incident"]
    monkeypatch.setattr(constants, "CALLBACKS_ENABLED", ["synap.ops.incident"])
    assert alertmanager.prepare_runs() == []  # a configuration of its own, which enables the callback: left alone

    monkeypatch.chdir(tmp_path)
    assert alertmanager.incidents_dir_for({}) == str(tmp_path / "incidents")
    monkeypatch.setenv("SYNAP_PLAY_INCIDENTS_DIR", "records")
    assert alertmanager.incidents_dir_for({}) == str(tmp_path / "records")
    assert alertmanager.incidents_dir_for({"incidents_dir": "/srv/incidents"}) == "/srv/incidents"


def lock_holders(pg) -> list[dict]:
    """synap-play's advisory locks as any session sees them: pg_locks joined with pg_stat_activity."""
    with pg.connect(db="postgres") as conn:
        rows = conn.execute(
            "SELECT l.classid, l.objid, a.pid, a.application_name, a.query FROM pg_locks l"
            " JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted").fetchall()
    return [{"classid": classid, "objid": objid, "backend": backend, "application_name": name,
             "holder": json.loads(query.split(mitigator_lock.HOLDER_MARK, 1)[1].rsplit("*/", 1)[0])}
            for classid, objid, backend, name, query in rows if mitigator_lock.HOLDER_MARK in (query or "")]


@pytest.mark.slow
def test_ansible_rulebook_runs_one_locked_recorded_run_per_scenario(tmp_path, pg):
    """Two Alertmanager posts for one scenario while its run holds the lock: one run, one record. The second
    is swallowed by the rulebook's throttle (no run, so no record); the lock the run holds is the PostgreSQL
    advisory lock every operator sees, and it refuses a mitigator on another machine."""
    flag, incidents = tmp_path / "flag", tmp_path / "incidents"
    dsn = pg.dsn(db="postgres")
    target = f"127.0.0.1:{pg.port}/postgres"
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"synap": {
        "hosts": {"fixture-host": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
        "vars": {"flag_path": str(flag), "hold_seconds": 8, "synap_database_url": dsn}}}))
    port = free_port()
    variables = tmp_path / "vars.yml"
    variables.write_text(yaml.safe_dump({"synap_eda_host": "127.0.0.1", "synap_eda_port": port,
                                         "synap_incidents_dir": str(incidents)}))
    # As an operator starts it in the checkout: no ANSIBLE_CONFIG, no records folder in the environment. The
    # runs find ansible.cfg and the incident callback through the source (prepare_runs).
    env = {k: v for k, v in os.environ.items()
           if k not in ("ANSIBLE_CONFIG", "ANSIBLE_CALLBACKS_ENABLED", "SYNAP_PLAY_INCIDENTS_DIR")}
    env.update(ANSIBLE_NOCOLOR="1", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               SYNAP_PLAY_PROJECT=str(ROOT), SYNAP_PLAY_LOCK_DIR=str(tmp_path / "locks"))
    rulebook = tmp_path / "rulebook.yml"
    document = yaml.safe_load(RULEBOOK.read_text())
    # The rulebook's source reads the fixture catalog and mapping instead of the project's.
    document[0]["sources"][0]["synap.ops.alertmanager"].update(catalog=str(EDA_CATALOG), alert_map=str(EDA_ALERT_MAP))
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
        firing = alertmanager_payload({"name": "FixtureHeldPinned", "fingerprint": "p1"},
                                      {"name": "FixtureHeld", "severity": "page", "fingerprint": "p2"})
        status, first = post(url, firing)
        assert status == 202
        [first] = first["queued"]
        assert first["incidents_dir"] == str(incidents)
        while not (holders := lock_holders(pg)):
            assert proc.poll() is None and time.monotonic() < deadline, log.seek(0) or log.read()
            time.sleep(0.3)
        # Alertmanager's repeat of the group, while the first run still holds the lock (it sleeps 8 s).
        status, second = post(url, firing)
        assert status == 202
        [second] = second["queued"]
        # A mitigator elsewhere (its own lock folder: the file layer is free) is refused by the PostgreSQL lock.
        elsewhere = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("hold_lock.py")), "fixture-held", target, dsn, "bob",
             "manual", str(tmp_path / "elsewhere"), "0"], input="", capture_output=True, text=True, timeout=60)
        assert not flag.exists(), "the run was still diagnosing while the second post and the refusal happened"
        while lock_holders(pg) or not (incidents / first["incident_id"] / "report.md").is_file():
            assert proc.poll() is None and time.monotonic() < deadline, log.seek(0) or log.read()
            time.sleep(0.3)
        assert post(url, alertmanager_payload({"name": "FixtureHeld", "fingerprint": "r1"}, status="resolved"))[0] == 202
        time.sleep(3)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    log.seek(0)
    output = log.read()
    # The lock the run held, as pg_stat_activity showed it to everyone: synap-play's advisory key of this
    # scenario and target, held by ansible-playbook (not ansible-rulebook) on behalf of the first event's incident.
    [held] = holders
    assert (held["classid"], held["objid"]) == (mitigator_lock.LOCK_NAMESPACE,
                                                mitigator_lock.lock_key("fixture-held", target))
    assert held["application_name"].startswith("synap-play lock ansible-rulebook@")
    assert (held["holder"]["operator"], held["holder"]["incident_id"]) == ("ansible-rulebook", first["incident_id"])
    assert held["holder"]["pid"] != proc.pid
    assert elsewhere.returncode == 5, elsewhere.stderr
    assert elsewhere.stderr.startswith(f"another synap-play run is mitigating fixture-held on {target}: operator "
                                       f"ansible-rulebook on host "), elsewhere.stderr
    assert f"incident {first['incident_id']}, " in elsewhere.stderr and "postgresql backend" in elsewhere.stderr

    # One run, one record: the repeat was throttled, so it neither ran nor left a record (not even "locked out").
    assert second["incident_id"] != first["incident_id"]
    assert output.count("PLAY RECAP") == 1, output[-4000:]
    assert [p.name for p in incidents.iterdir()] == [first["incident_id"]]
    assert flag.read_text() == f"raised by {first['incident_id']}\n"  # the P0 gate ran the disruptive fix, once
    assert "alert FixtureHeld (r1): resolved; nothing to run" in output
    record = json.loads((incidents / first["incident_id"] / "incident.json").read_text())
    assert (record["scenario"], record["title"], record["operator"]) == ("fixture-held", "Fixture held flag file",
                                                                       "ansible-rulebook")
    assert record["status"] == "resolved" and record["exit_code"] == 0
    assert record["lock"]["target"] == target
    assert record["lock"]["where"] == [f"file {tmp_path / 'locks'}/fixture-held-"
                                       f"{mitigator_lock.lock_key('fixture-held', target):08x}.lock",
                                       f"postgresql {target}"]
    assert record["follow_ups"] == ["Find out why the flag went missing"] and len(record["alerts"]) == 2
    assert [p["name"] for p in record["phases"]] == ["Acknowledge", "Assess", "Mitigate", "Resolve", "Document"]
    assert [(a["status"], a["class"], a["changed"]) for a in record["actions"]] == [("done", "disruptive", True)]
    assert dsn.split("@")[0].rsplit(":", 1)[1] not in json.dumps(record)  # the DSN's password is masked
