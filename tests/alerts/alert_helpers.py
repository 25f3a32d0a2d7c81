"""Shared by the alert tests: fixture paths and Alertmanager payloads."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CATALOG = FIXTURES / "scenarios.yml"
INVENTORY = FIXTURES / "inventory" / "hosts.yml"
ALERT_MAP = Path(__file__).resolve().parent / "data" / "alerts.yml"


def alertmanager_payload(*alerts: dict, status: str = "firing") -> dict:
    """A webhook body shaped exactly as Alertmanager (version 4) posts it."""
    entries = []
    for alert in alerts:
        labels = {"alertname": alert["name"], **({"severity": alert["severity"]} if "severity" in alert else {})}
        entries.append({
            "status": alert.get("status", status),
            "labels": labels,
            "annotations": {"summary": alert.get("summary", f"{alert['name']} is firing")},
            "startsAt": alert.get("starts_at", "2026-11-29T03:15:00.123456789Z"),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": alert.get("fingerprint", "f" * 16),
        })
    return {"version": "4", "groupKey": "{}:{alertname=\"x\"}", "truncatedAlerts": 0, "status": status,
            "receiver": "synap-play", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093", "alerts": entries}
