"""Shared by the serve tests: a real `synap-play serve` process on a free loopback port, and an HTTP client."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CATALOG = FIXTURES / "scenarios.yml"
INVENTORY = FIXTURES / "inventory" / "hosts.yml"
ALERT_MAP = Path(__file__).resolve().parent / "data" / "alerts.yml"
START_TIMEOUT = 60
RUN_TIMEOUT = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def webhook(*alerts: dict, status: str = "firing") -> dict:
    """A body shaped as Alertmanager 0.25 posts it (../shared/reference/alerting.md, a captured one)."""
    entries = []
    for alert in alerts:
        state = alert.get("status", status)
        labels = {"alertname": alert["name"], "service": "jobs",
                  **({"severity": alert["severity"]} if "severity" in alert else {})}
        entries.append({
            "status": state, "labels": labels, "annotations": {"summary": f"{alert['name']} is {state}"},
            "startsAt": alert.get("starts_at", "2026-12-02T06:07:35Z"),
            "endsAt": alert.get("ends_at", "2026-12-02T06:30:00Z" if state == "resolved" else "0001-01-01T00:00:00Z"),
            "generatorURL": "", "fingerprint": alert.get("fingerprint", "73d499566d87aece"),
        })
    name = alerts[0]["name"]
    return {"receiver": "synap", "status": status, "alerts": entries, "groupLabels": {"alertname": name},
            "commonLabels": {"alertname": name}, "commonAnnotations": {}, "externalURL": "http://host:9093",
            "version": "4", "groupKey": f'{{}}:{{alertname="{name}"}}', "truncatedAlerts": 0}


# An alert of the fixture catalog at P3, whose policy holds its fix back for approval.
P3_ALERT = {"name": "FixtureAlert", "severity": "info", "fingerprint": "73d499566d87aece"}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any
    seconds: float  # the whole round trip, as the client saw it

    @property
    def handler_ms(self) -> float:
        """What the handler itself took (its Server-Timing header)."""
        return float(self.headers["Server-Timing"].split("dur=")[1])


@dataclass
class Serve:
    """One `synap-play serve` process."""

    incidents_dir: Path
    log: Path
    args: list[str] = field(default_factory=list)
    token: str | None = None
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Serve:
        for _ in range(3):  # a free port can be taken between the probe and serve's bind
            self.port = free_port()
            argv = [sys.executable, "-m", "synap_play", "serve", "--listen", f"127.0.0.1:{self.port}",
                    "--catalog", str(CATALOG), "--alert-map", str(ALERT_MAP), "-i", str(INVENTORY),
                    "--incidents-dir", str(self.incidents_dir), *self.args]
            with self.log.open("ab") as log:
                self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            if self._ready():
                return self
            if "already in use" not in self.output():
                break
        raise AssertionError(f"synap-play serve did not start:\n{self.output()}")

    def _ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if self.get("/healthz").status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    # -- HTTP -------------------------------------------------------------------------------------------------
    def call(self, method: str, path: str, body: bytes | dict | None = None, token: str | None = "default",
             headers: dict[str, str] | None = None) -> Reply:
        token = self.token if token == "default" else token
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=dict(headers or {}))
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        began = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, answer, raw = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            status, answer, raw = exc.code, dict(exc.headers), exc.read()
        seconds = time.perf_counter() - began
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode(errors="replace")
        return Reply(status, answer, parsed, seconds)

    def post(self, body: bytes | dict | None, **kwargs) -> Reply:
        return self.call("POST", "/api/alerts", body, **kwargs)

    def get(self, path: str, **kwargs) -> Reply:
        return self.call("GET", path, **kwargs)

    # -- the incidents folder ------------------------------------------------------------------------------------
    def folders(self) -> list[Path]:
        return sorted(p for p in self.incidents_dir.iterdir() if p.is_dir()) if self.incidents_dir.is_dir() else []

    def record(self, incident_id: str) -> dict | None:
        try:
            return json.loads((self.incidents_dir / incident_id / "incident.json").read_text())
        except (OSError, ValueError):
            return None

    def notes(self, incident_id: str) -> list[dict]:
        path = self.incidents_dir / incident_id / "alerts.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def wait_for_record(self, incident_id: str, ended: bool = True, timeout: float = RUN_TIMEOUT) -> dict:
        """The record once it exists (and, with ended, once its run closed it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = self.record(incident_id)
            # Ended: closed by its run, and serve has seen the run's process end.
            closed = record is not None and bool(record.get("ended_at")) and any(
                n["event"] == "ended" for n in self.notes(incident_id))
            if record is not None and (closed or not ended):
                return record
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited ({self.process.returncode}):\n{self.output()}")
            time.sleep(0.2)
        raise AssertionError(f"no {'closed ' if ended else ''}record for {incident_id} in {timeout} s:\n{self.output()}")


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of a Prometheus text exposition, or None when it is not there."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None
