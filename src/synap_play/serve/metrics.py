"""The series of GET /metrics, in a registry of the service's own (not prometheus_client's global one)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

from synap_play import collection

collection.load()

from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import parse_iso
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import ACTION_STATUS, Decision

PREFIX = "synap_play_serve"
# From the webhook's arrival: a scenario's diagnosis takes seconds, a mitigation that waits for its effect minutes.
BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
# Alert names come from the senders; past this many, further names are counted as "other" so that a sender
# cannot grow the series without bound.
MAX_ALERT_NAMES = 200
DONE = ACTION_STATUS[Decision.RUN.value]


class ServeMetrics:
    def __init__(self) -> None:
        # No <name>_created series beside every counter and histogram: serve's own process, its own exposition.
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.alerts = Counter(f"{PREFIX}_alerts_received", "Alerts received in webhooks, by alert name and status.",
                              ["alertname", "status"], registry=r)
        self.incidents = Counter(f"{PREFIX}_incidents", "Runs that ended, by scenario and outcome (the record's "
                                 "status; 'refused' when the run refused to start, 'no record' when it left none).",
                                 ["scenario", "outcome"], registry=r)
        self.repeats = Counter(f"{PREFIX}_alert_repeats", "Firing alerts noted on an open incident instead of run "
                               "again, by scenario.", ["scenario"], registry=r)
        self.webhooks = Counter(f"{PREFIX}_webhooks", "Webhook posts answered, by HTTP status.", ["code"], registry=r)
        self.to_diagnosis = self._timing("diagnosis", "the end of the Assess phase")
        self.to_mitigation = self._timing("mitigation", "the last mitigation done (runs that changed something)")
        self.to_verification = self._timing("verification", "the verification")
        self.in_flight = Gauge(f"{PREFIX}_runs_in_flight", "Scenario runs going now.", registry=r)
        self.queue_length = Gauge(f"{PREFIX}_queue_length", "Scenario runs waiting for a free slot.", registry=r)
        self._names: set[str] = set()

    def _timing(self, what: str, until: str) -> Histogram:
        return Histogram(f"{PREFIX}_alert_to_{what}_seconds", f"Seconds from the webhook's arrival to {until}, "
                         "by scenario.", ["scenario"], buckets=BUCKETS, registry=self.registry)

    def alert_received(self, name: str, status: str, count: int = 1) -> None:
        if name not in self._names and len(self._names) >= MAX_ALERT_NAMES:
            name = "other"
        self._names.add(name)
        self.alerts.labels(name, status).inc(count)

    def run_ended(self, scenario: str, outcome: str, received_at: datetime, record: dict[str, Any] | None) -> None:
        self.incidents.labels(scenario, outcome).inc()
        if not record:
            return
        moments = {
            self.to_diagnosis: next((p.get("ended_at") for p in record.get("phases") or []
                                     if p.get("name") == "Assess"), None),
            self.to_mitigation: max((a.get("at") or "" for a in record.get("actions") or []
                                     if a.get("status") == DONE), default=None),
            self.to_verification: (record.get("verification") or {}).get("at"),
        }
        for histogram, moment in moments.items():
            if moment:
                try:
                    seconds = (parse_iso(moment) - received_at).total_seconds()
                except (ValueError, TypeError):
                    continue
                # The record keeps whole seconds: a moment in the second of the arrival reads as a little before it.
                histogram.labels(scenario).observe(max(0.0, seconds))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
