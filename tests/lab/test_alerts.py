"""The lab's monitoring stack for real: Debian's Prometheus, Alertmanager and exporters (lab/compose.yaml) with the
lab's rules (monitoring/lab/synap.rules.yml). Each of the ten faults, after `synap-play lab inject`, really happens as
plain commands see it (tests/labtools.py's observations) and fires its alert, as Alertmanager's API shows it, within a
bounded time; the alert resolves after `synap-play lab clear`, and the lab is healthy again. Alertmanager
also posts both notifications, firing and resolved, with the lab's Bearer token, to the webhook receiver the lab
inventory names (here a receiver run by this test on the host, where `synap-play serve` would listen).

Then the whole alert loop, with `synap-play serve` itself as that receiver: a fault fires its alert, Alertmanager
posts it to serve, serve runs the scenario under the default severity policy; what the policy held back is approved
through serve's API, the approval run mitigates and verifies, and the alert resolves in Alertmanager and on the
incident. One lab for both (bringing it up is the slow part)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

import pytest
from labtools import OBSERVATIONS, ROOT, SYNAP_PLAY, Load, assert_healthy, cli, curl
from local_server import LocalServer

from synap_play.lab import access, faults, monitoring
from synap_play.lab.stack import Lab

pytestmark = pytest.mark.lab

NINE_ALERTS = {"HighErrorRate", "WorkerQueueBackup", "DatabaseConnectionFailure", "ElevatedLatency",
               "ProposalSystemFailure", "PodHighErrorRate", "PostgresConnectionPoolExhausted",
               "HubProtocolHighLatency", "PodDown"}
# Lab rules: rate windows of 5 s, `for:` of 1-15 s, scrapes every 1-2 s; the faults' own effects take seconds more
# (connections leak, locks age past the lab's thresholds). Bounds with room for a loaded two-core machine.
FIRES_WITHIN = 90
RESOLVES_WITHIN = 90
# AI requests sent while the worker hangs: the hung runs take Inngest's 16 slots, the rest queue past 100.
EVENTS_WHILE_HUNG = 150


class WebhookReceiver(LocalServer):
    """The webhook receiver Alertmanager posts to: keeps every notification (version 4 payloads) and the
    Authorization headers it came with."""

    def __init__(self, address: tuple[str, int]):
        notifications = self.notifications = []
        authorizations = self.authorizations = set()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                authorizations.add(self.headers.get("Authorization", ""))
                notifications.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(Handler, address)


def host_gateway(lab: Lab) -> str:
    """The address host.docker.internal (host-gateway) resolves to where Alertmanager runs: docker0's. Asked of its
    container, since the bridge network's inspect names no gateway when dockerd found docker0 already set up."""
    answer = lab.compose("exec", "-T", "alertmanager", "getent", "ahostsv4", "host.docker.internal").stdout.split()
    assert answer, "host.docker.internal does not resolve in the alertmanager container"
    return answer[0]


@pytest.fixture
def receiver(lab):
    url = urlsplit(monitoring.webhook_url(ROOT))
    assert url.hostname == "host.docker.internal", "the lab's receiver runs on the host"
    with WebhookReceiver((host_gateway(lab), url.port)) as server:
        yield server


def firing(name: str) -> bool:
    return any(alert["status"]["state"] == "active" for alert in monitoring.alerts(name))


def wait(condition, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout} s"
        time.sleep(1)
    return time.monotonic() - started


def notified(receiver: WebhookReceiver, name: str, status: str) -> bool:
    return any(alert["labels"].get("alertname") == name and alert["status"] == status
               for notification in receiver.notifications for alert in notification["alerts"])


def test_prometheus_has_the_rules_and_the_healthy_lab_pages_nobody(lab):
    status, rules = curl(f"{monitoring.PROMETHEUS_URL}/api/v1/rules")
    assert status == 200
    names = {rule["name"] for group in json.loads(rules)["data"]["groups"] for rule in group["rules"]}
    assert names >= NINE_ALERTS | {fault.alert for fault in faults.FAULTS.values()}
    assert monitoring.targets_down() == []
    # Several evaluations of every rule over the healthy lab under normal load.
    traffic = Load(20)
    try:
        time.sleep(20)
        assert monitoring.firing() == []
    finally:
        traffic.stop()


@pytest.mark.parametrize("name", list(faults.FAULTS))
def test_fault_happens_fires_its_alert_and_clearing_resolves_it(name, lab, receiver):
    """`synap-play lab inject`: the fault is in effect (status) and really happens, as plain commands see it; its alert
    fires and notifies; `synap-play lab clear`: the alert resolves and notifies, and the lab is healthy again."""
    fault = faults.FAULTS[name]
    wait(lambda: not monitoring.firing(), RESOLVES_WITHIN, "the lab quiet before the fault")
    traffic = Load(20) if fault.traffic == "requests" else None
    try:
        cli("inject", name)
        assert name in cli("status")
        if fault.traffic == "events":
            access.send_events(faults.ai_requests(EVENTS_WHILE_HUNG))
        OBSERVATIONS[name]()
        took = wait(lambda: firing(fault.alert), FIRES_WITHIN, f"{fault.alert} firing after {name}")
        print(f"{name}: {fault.alert} firing in Alertmanager {took:.0f} s after the injection")
        # The fault stays until the firing notification is out: Alertmanager drops a group whose alerts all resolved
        # before its first flush, so clearing at once could leave nothing to send.
        notifications_arrive(receiver, fault.alert, ["firing"])
        cli("clear")
        took = wait(lambda: not firing(fault.alert), RESOLVES_WITHIN, f"{fault.alert} resolved after clearing")
        print(f"{name}: {fault.alert} resolved {took:.0f} s after the clear")
    finally:
        if traffic:
            traffic.stop()
        if name in faults.active(lab):
            faults.clear(lab, name)
    # send_resolved: the receiver got the alert firing, then resolved, with the token the lab gave Alertmanager.
    notifications_arrive(receiver, fault.alert, ["firing", "resolved"])
    assert receiver.authorizations == {f"Bearer {monitoring.webhook_token(lab.state_dir)}"}
    assert_healthy(lab)


def notifications_arrive(receiver: WebhookReceiver, name: str, statuses: list[str]) -> None:
    try:
        wait(lambda: all(notified(receiver, name, status) for status in statuses), 60,
             f"{name} notifications at the webhook receiver")
    except AssertionError:
        seen = [(n["status"], [(a["labels"].get("alertname"), a["status"], a["startsAt"], a["endsAt"])
                               for a in n["alerts"]]) for n in receiver.notifications]
        logs = subprocess.run(["docker", "compose", "logs", "--tail", "20", "alertmanager"], cwd=ROOT / "lab",
                              capture_output=True, text=True).stdout
        raise AssertionError(f"{name}: notifications received {seen}\n{logs}") from None


# -- the alert loop through synap-play serve -------------------------------------------------------------------------
LOOP_TIMEOUT = 300  # from the injection to the approval run's end, on a loaded two-core machine


class LabServe:
    """`synap-play serve` where the lab's Alertmanager posts: the docker bridge's gateway, the lab's token."""

    def __init__(self, lab: Lab, incidents, log):
        url = urlsplit(monitoring.webhook_url(ROOT))
        self.token = monitoring.webhook_token(lab.state_dir)
        gateway = host_gateway(lab)
        self.url = f"http://{gateway}:{url.port}"
        self.incidents = incidents
        self.log = log
        token_file = lab.state_dir / "alertmanager" / monitoring.TOKEN_FILE
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [*SYNAP_PLAY, "serve", "--listen", f"{gateway}:{url.port}", "--token-file", str(token_file),
                 "-i", "lab", "--incidents-dir", str(incidents), "--operator", "alert-loop"],
                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=output, stderr=output)
        wait(lambda: self._up(), 60, "synap-play serve listening")

    def _up(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()
        try:
            return self.call("GET", "/healthz")[0] == 200
        except OSError:
            return False

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(self.url + path, method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Authorization": f"Bearer {self.token}",
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def incident(self, scenario: str, approval_of: str | None = None, opened_by: str | None = None) -> dict | None:
        """serve's newest incident of the scenario, as GET shows it; when asked, the approval run of that incident,
        or the one that alert opened (another alert of the fault may have opened one at a lower severity first)."""
        for summary in self.call("GET", "/api/incidents?last=50")[1]["recent"]:
            if summary["scenario"] != scenario:
                continue
            shown = self.call("GET", f"/api/incidents/{summary['id']}")[1]
            if approval_of is not None and (shown.get("approval_of") or {}).get("incident") != approval_of:
                continue
            if opened_by is not None and opened_by not in {alert["name"] for note in shown["serve_notes"]
                                                           if note["event"] == "queued" for alert in note["alerts"]}:
                continue
            return shown
        return None

    def ended(self, incident_id: str) -> dict | None:
        shown = self.call("GET", f"/api/incidents/{incident_id}")[1]
        return shown if shown.get("state") == "ended" and shown.get("ended_at") else None

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


@pytest.fixture
def served(lab, tmp_path):
    cli("reset")
    # Nothing firing before serve listens (the reset starts the monitoring anew), so that what reaches this serve is
    # this test's fault.
    wait(lambda: not monitoring.firing(), RESOLVES_WITHIN, "the lab quiet before the fault")
    serve = LabServe(lab, tmp_path / "incidents", tmp_path / "serve.log")
    yield serve
    serve.stop()


@dataclass(frozen=True)
class Loop:
    fault: str
    alert: str
    scenario: str
    severity: str
    # What the default severity policy runs on its own at that severity, and what it holds back for a person.
    ran: tuple[str, ...]
    held: tuple[str, ...]
    # How the alert's own run may end: needing approval, or already resolved by what the policy ran.
    first_status: tuple[str, ...] = ("needs approval",)


LOOPS = {
    # HighErrorRate is critical: P1, which asks before a rollback (destructive).
    "bad-deploy": Loop("bad-deploy", "HighErrorRate", "high-error-rate", "P1", (), ("Roll back",)),
    # WorkerQueueBackup is a warning: P2, which asks before the restart (disruptive) and the cancels (safe).
    "worker-stuck": Loop("worker-stuck", "WorkerQueueBackup", "worker-queue-backup", "P2", (),
                         ("Restart the worker",)),
    # PostgresConnectionPoolExhausted is P0 whatever its label: the api restart (disruptive) runs at once, raising
    # max_connections and restarting PostgreSQL (destructive) wait for a person. The restart alone may free the
    # pool; then the approval run, planning again, finds nothing left to do and raises nothing. The api's failing
    # health probe may fire PodDown (critical: P1) first: its incident is then raised by the pool's alert, whose
    # run at P0 is the one followed here.
    "connection-exhaustion": Loop("connection-exhaustion", "PostgresConnectionPoolExhausted",
                                  "database-connection-failure", "P0", ("Restart the API",),
                                  ("Raise max_connections",), ("needs approval", "resolved")),
}


def moment(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def resolved_note(served: LabServe, *incident_ids: str) -> float | None:
    """When Alertmanager's "resolved" was noted, on whichever incident held the alert by then."""
    for incident_id in incident_ids:
        notes = served.call("GET", f"/api/incidents/{incident_id}")[1]["serve_notes"]
        found = [moment(n["at"]) for n in notes if n["event"] == "resolved"]
        if found:
            return found[0]
    return None


@pytest.mark.parametrize("name", list(LOOPS))
def test_the_alert_loop_through_serve(name, lab, served):
    loop = LOOPS[name]
    fault = faults.FAULTS[loop.fault]
    traffic = Load(20) if fault.traffic == "requests" else None
    try:
        injected = time.time()
        faults.inject(lab, loop.fault)
        if fault.traffic == "events":
            access.send_events(faults.ai_requests(EVENTS_WHILE_HUNG))
        # Alertmanager -> serve -> the scenario's run, under the default severity policy.
        wait(lambda: served.incident(loop.scenario, opened_by=loop.alert) is not None, FIRES_WITHIN,
             f"{loop.alert} reaching serve")
        incident_id = served.incident(loop.scenario, opened_by=loop.alert)["id"]
        wait(lambda: served.ended(incident_id), LOOP_TIMEOUT, f"the run of {incident_id}")
        first = served.ended(incident_id)
        assert first["severity"] == loop.severity, first
        assert loop.alert in {a["name"] for a in first["alerts"]}, first["alerts"]
        assert first["status"] in loop.first_status, json.dumps(first, indent=1)[:4000]
        done = [a["task"] for a in first["actions"] if a["status"] == "done"]
        assert all(any(want in task for task in done) for want in loop.ran), first["actions"]
        waiting = [step["task"] for step in first["pending_approval"]]
        assert all(any(want in task for task in waiting) for want in loop.held), first["actions"]

        # The on-call engineer approves every held-back step through the API; the approval run plans them again.
        status, answer = served.call("POST", f"/api/incidents/{incident_id}/approvals/all",
                                     {"decision": "approve", "by": "on-call"})
        assert status == 202, answer
        run_id = answer["run"]
        wait(lambda: served.ended(run_id), LOOP_TIMEOUT, f"the approval run {run_id}")
        run = served.ended(run_id)
        assert run["approval_of"]["incident"] == incident_id
        if first["status"] == "resolved":  # nothing was left to fix: the fresh plans find nothing to do
            assert run["status"] in ("healthy", "resolved"), json.dumps(run, indent=1)[:4000]
            assert not any(a["status"] == "done" and a["class"] == "destructive" for a in run["actions"]), run["actions"]
        else:
            assert run["status"] == "resolved", json.dumps(run, indent=1)[:4000]
            assert any(a["status"] == "done" and a.get("approval_of") == incident_id for a in run["actions"])
        if loop.fault in faults.active(lab):  # the mitigation repaired the lab; the fault's own record goes too
            faults.clear(lab, loop.fault)
    finally:
        if traffic:
            traffic.stop()
    # The alert resolves in Alertmanager, and Alertmanager's "resolved" is noted on the incident holding it.
    wait(lambda: not firing(loop.alert), RESOLVES_WITHIN, f"{loop.alert} resolved")
    wait(lambda: resolved_note(served, run_id, incident_id), 60, f"{loop.alert} resolved, noted by serve")

    # The incident's whole story, in order: alert start, received, diagnosed, mitigated, verified, alert resolved.
    alert_start = min(moment(a["starts_at"]) for a in first["alerts"] if a["name"] == loop.alert)
    received = moment(next(n["at"] for n in first["serve_notes"] if n["event"] == "queued"))
    diagnosed = moment(next(p["ended_at"] for p in first["phases"] if p["name"] == "Assess"))
    ended = run if first["status"] != "resolved" else first  # the run whose mitigation resolved the incident
    mitigated = max(moment(a["at"]) for a in ended["actions"] if a["status"] == "done")
    verified = moment(ended["verification"].get("at") or ended["ended_at"])
    resolved = resolved_note(served, run_id, incident_id)
    story = [injected, alert_start, received, diagnosed, mitigated, verified]
    assert story == sorted(story), story
    # The alert cannot resolve before the incident's mitigation began; it may resolve before a step is recorded as
    # done (a step's "at" is when it finished: the API's restart frees the pool at once, then waits for the health
    # check, and the pool's alert resolved two seconds before that wait ended), before the last step (the worker
    # restarted, the queue drains while the stuck runs are still being cancelled), and before the playbook's
    # verification has finished measuring it. (The record's moments are whole seconds.)
    mitigation_began = moment(next(p["started_at"] for p in first["phases"] if p["name"] == "Mitigate"))
    assert resolved >= mitigation_began - 1, (resolved, mitigation_began)
    print(f"{name}: alert {alert_start - injected:.0f} s after the injection, received +{received - alert_start:.1f} s, "
          f"diagnosed +{diagnosed - received:.1f} s, mitigated +{mitigated - diagnosed:.1f} s, "
          f"verified +{verified - mitigated:.1f} s, alert resolved +{resolved - mitigated:.1f} s after the mitigation")
