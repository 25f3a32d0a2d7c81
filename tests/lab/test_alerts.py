"""The lab's monitoring stack for real: Debian's Prometheus, Alertmanager and exporters (lab/compose.yaml) with the
lab's rules (monitoring/lab/synap.rules.yml). Each of the ten faults fires its alert, as Alertmanager's API shows it,
within a bounded time after `synap-play lab inject`, and the alert resolves after `synap-play lab clear`. Alertmanager
also posts both notifications, firing and resolved, with the lab's Bearer token, to the webhook receiver the lab
inventory names (here a receiver run by this test on the host, where `synap-play serve` would listen)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

import pytest
from labtools import ROOT, Load, cli, curl
from local_server import LocalServer

from synap_play.lab import faults, monitoring
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


def host_gateway() -> str:
    """The address host.docker.internal (host-gateway) resolves to in the lab's containers: docker0's."""
    return subprocess.run(["docker", "network", "inspect", "bridge", "-f", "{{(index .IPAM.Config 0).Gateway}}"],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def lab():
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode:
        pytest.skip("no Docker engine (scripts/docker-engine start)")
    cli("up")
    yield Lab()
    cli("down")


@pytest.fixture(scope="module")
def receiver(lab):
    url = urlsplit(monitoring.webhook_url(ROOT))
    assert url.hostname == "host.docker.internal", "the lab's receiver runs on the host"
    with WebhookReceiver((host_gateway(), url.port)) as server:
        yield server


def firing(lab: Lab, name: str) -> bool:
    return any(alert["status"]["state"] == "active" for alert in monitoring.alerts(lab.http, name))


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
    assert monitoring.targets_down(lab.http) == []
    # Several evaluations of every rule over the healthy lab under normal load.
    traffic = Load(20)
    try:
        time.sleep(20)
        assert monitoring.firing(lab.http) == []
    finally:
        traffic.stop()


@pytest.mark.parametrize("name", list(faults.FAULTS))
def test_fault_fires_its_alert_and_clearing_resolves_it(name, lab, receiver):
    fault = faults.FAULTS[name]
    wait(lambda: not monitoring.firing(lab.http), RESOLVES_WITHIN, "the lab quiet before the fault")
    traffic = Load(20) if fault.traffic == "requests" else None
    try:
        faults.inject(lab, name)
        if fault.traffic == "events":
            lab.send_events(faults.ai_requests(lab, EVENTS_WHILE_HUNG))
        took = wait(lambda: firing(lab, fault.alert), FIRES_WITHIN, f"{fault.alert} firing after {name}")
        print(f"{name}: {fault.alert} firing in Alertmanager {took:.0f} s after the injection")
        faults.clear(lab, name)
        took = wait(lambda: not firing(lab, fault.alert), RESOLVES_WITHIN, f"{fault.alert} resolved after clearing")
        print(f"{name}: {fault.alert} resolved {took:.0f} s after the clear")
    finally:
        if traffic:
            traffic.stop()
        if name in faults.active(lab):
            faults.clear(lab, name)
    # send_resolved: the receiver got the alert firing, then resolved, with the token the lab gave Alertmanager.
    try:
        wait(lambda: notified(receiver, fault.alert, "firing") and notified(receiver, fault.alert, "resolved"), 60,
             f"{fault.alert} notifications at the webhook receiver")
    except AssertionError:
        seen = [(n["status"], [(a["labels"].get("alertname"), a["status"], a["startsAt"], a["endsAt"])
                               for a in n["alerts"]]) for n in receiver.notifications]
        logs = subprocess.run(["docker", "compose", "logs", "--tail", "20", "alertmanager"], cwd=ROOT / "lab",
                              capture_output=True, text=True).stdout
        raise AssertionError(f"{fault.alert}: notifications received {seen}\n{logs}") from None
    assert receiver.authorizations == {f"Bearer {monitoring.webhook_token(lab.state_dir)}"}
