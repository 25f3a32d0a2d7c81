"""What one webhook means: new incidents to run, repeats and resolutions to note on open ones.

The alerts were validated and are grouped into scenario runs by the collection's own intake (plugin_utils/alerts.py:
parse_payload and plan_intake), the code `synap-play alert` and the EDA source use. Then, for each scenario:

- an incident of that scenario and target is open (queued, running, or ended needing a human while its alerts
  still fire): Alertmanager is repeating itself (group_interval, repeat_interval), so the repeat is noted on it;
  unless the alerts make a more severe incident than it is (PodDown at P1, then the pool exhausted at P0): that is
  new evidence for Assess, so a run at the higher severity is queued, and the open incident is noted as raised;
- else, when every firing alert is one an incident of that scenario and target already ran for (same fingerprint,
  same startsAt) and that incident ended with a verdict less than RESEND_GRACE ago: Alertmanager is re-sending what
  Prometheus has not yet seen recover, so the re-send is noted on that incident (after_close), not run again;
- else a new incident is queued, named now, with a note and the webhook body its run will read; the note names
  the incidents whose verdict an alert outlived (still firing N minutes after one was resolved).

A resolved alert is noted on the newest incident of its scenario and target it fired for. Everything here runs in
the event loop without awaiting, so two webhooks never both decide that an incident is missing.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from synap_play import collection

collection.load()

from ansible_collections.synap.ops.plugins.plugin_utils.alerts import (
    Alert,
    AlertMapping,
    IntakePlan,
    ScenarioRun,
    alert_vars,
    plan_intake,
)
from ansible_collections.synap.ops.plugins.plugin_utils.alerts import iso as alert_iso
from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import iso, new_incident_id
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import SEVERITIES

from synap_play.serve.incidents import Incident, IncidentIndex, alert_key, firing_of
from synap_play.serve.metrics import ServeMetrics
from synap_play.serve.notes import Event, write_webhook
from synap_play.serve.runs import Job, RunQueue
from synap_play.serve.settings import Settings
from synap_play.serve.warm import WarmLooks

log = logging.getLogger("synap_play.serve")
RETRY_AFTER_SECONDS = 30


@dataclass
class PlannedRun:
    run: ScenarioRun
    alerts: list[dict[str, Any]]  # as the record and serve's notes keep them
    body: bytes  # the webhook body its run is given: this scenario's firing alerts only


@dataclass
class Prepared:
    """A webhook's alerts, grouped and rendered: everything that does not depend on what is open."""

    plan: IntakePlan
    runs: list[PlannedRun]
    counts: Counter


class Intake:
    def __init__(self, settings: Settings, catalog: dict[str, Any], mapping: AlertMapping, index: IncidentIndex,
                 runs: RunQueue, metrics: ServeMetrics, warm: WarmLooks | None = None):
        self.settings = settings
        self.catalog = catalog
        self.mapping = mapping
        self.index = index
        self.runs = runs
        self.metrics = metrics
        self.warm = warm

    def prepare(self, alerts: list[Alert]) -> Prepared:
        """Group and render the alerts. Touches no state, so a large webhook is done off the event loop."""
        plan = plan_intake(alerts, self.mapping, self.catalog)
        runs = [PlannedRun(run, noted_alerts(run.alerts), json.dumps(webhook_document(run.alerts)).encode())
                for run in plan.runs]
        return Prepared(plan, runs, Counter((a.name, a.status) for a in alerts))

    def take(self, prepared: Prepared, received_at: datetime) -> tuple[int, dict[str, Any]]:
        """The HTTP status and body for a valid webhook: 202 with what was queued and noted, or 503 when the queue
        had no room for a new incident (the rest was still done: Alertmanager's retry finds it as repeats)."""
        for (name, status), count in prepared.counts.items():
            self.metrics.alert_received(name, status, count)
        plan = prepared.plan
        self.index.refresh()
        answer: dict[str, Any] = {"queued": [], "repeats": [], "resolved": [], "ignored": []}
        no_room = []
        for planned in prepared.runs:
            key = self.settings.key(planned.run.scenario.name)
            open_incident = self.index.latest(key)
            raised = None
            if open_incident is not None and open_incident.takes_repeats(received_at):
                if not raises(planned.run.severity, open_incident.severity):
                    answer["repeats"].append(self._repeat(open_incident, planned, planned.alerts, received_at))
                    continue
                raised = open_incident
            holders = self.index.ran_for(key, planned.alerts)
            firings = [firing_of(a) for a in planned.alerts]
            if raised is None and firings and all(f in holders and holders[f].takes_resend(received_at)
                                                  for f in firings):
                by_incident: dict[str, tuple[Incident, list[dict[str, Any]]]] = {}
                for alert, firing in zip(planned.alerts, firings, strict=True):
                    by_incident.setdefault(holders[firing].id, (holders[firing], []))[1].append(alert)
                for incident, alerts in by_incident.values():
                    answer["repeats"].append(self._repeat(incident, planned, alerts, received_at))
            elif self.runs.full:
                no_room.append(planned.run.scenario.name)
            else:
                answer["queued"].append(self._queue(planned, received_at, outlived(planned.alerts, holders,
                                                                                   received_at), raised))
        answer["resolved"] = self._resolved(plan.resolved, received_at)
        answer["ignored"] = [{"alert": a.name, "fingerprint": a.fingerprint, "reason": "no scenario maps it"}
                             for a in plan.unknown]
        answer["ignored"] += [{"alert": a.name, "fingerprint": a.fingerprint,
                               "reason": f"it maps to scenario {scenario}, which is not installed"}
                              for a, scenario in plan.unavailable]
        if no_room:
            error = (f"the run queue is full ({self.runs.waiting} runs waiting, --queue-size "
                     f"{self.settings.queue_size}); not queued: {', '.join(no_room)}; retry later")
            log.warning("refused a webhook: %s", error)
            return 503, {"error": error, **answer}
        return 202, answer

    def _queue(self, planned: PlannedRun, received_at: datetime, still_firing: list[dict[str, Any]],
               raised: Incident | None = None) -> dict[str, Any]:
        run = planned.run
        scenario = run.scenario.name
        incident_id = new_incident_id(scenario, received_at)
        incident = Incident(incident_id, self.settings.incidents_dir / incident_id, scenario)
        # The body first: a note saying "queued" must always find the payload its run needs.
        write_webhook(incident.folder, planned.body)
        extra: dict[str, Any] = {"still_firing_after": still_firing} if still_firing else {}
        if raised is not None:
            extra["raised_from"] = {"incident": raised.id, "severity": raised.severity}
        self.index.note(incident, {
            "event": Event.QUEUED, "at": iso(received_at), "scenario": scenario, "severity": run.severity,
            "started_at": alert_iso(run.started_at),
            "target": {"inventory": self.settings.inventory, "limit": self.settings.limit},
            "alerts": planned.alerts, **extra})
        if raised is not None:
            # Noted on the incident it raises, which from now on leaves its scenario's alerts to this one.
            self.index.note(raised, {"event": Event.RAISED, "at": iso(received_at), "severity": run.severity,
                                     "run": incident_id, "because": run.alert_names})
            log.info("%s raised from %s to %s by %s: %s queued", raised.id, raised.severity, run.severity,
                     ", ".join(run.alert_names), incident_id)
        # The diagnosis starts now, in serve, while the run waits for its slot and its Python starts.
        warm = self.warm.start(scenario, incident.folder) if self.warm is not None else None
        self.runs.put(Job(incident, planned.body, received_at, warm=warm))
        log.info("queued %s: %s -> %s at %s", incident_id, ", ".join(run.alert_names), scenario, run.severity)
        for earlier in still_firing:
            log.info("%s: %s still firing %s minutes after %s ended %s", incident_id, ", ".join(earlier["alerts"]),
                     earlier["minutes"], earlier["incident"], earlier["status"])
        return {"incident": incident_id, "scenario": scenario, "severity": run.severity, "alerts": run.alert_names,
                **extra}

    def _repeat(self, incident: Incident, planned: PlannedRun, alerts: list[dict[str, Any]],
                received_at: datetime) -> dict[str, Any]:
        run = planned.run
        names = sorted({a["name"] for a in alerts})
        # Only the alerts the incident does not already know as firing, or knows of an earlier firing (a new
        # startsAt): a group of thousands repeated every repeat_interval would otherwise copy itself into the notes
        # each time.
        news = [a for a in alerts if incident.alert_states.get(alert_key(a)) != "firing" or not incident.holds(a)]
        entry = {"event": Event.REPEAT, "at": iso(received_at), "severity": run.severity, "count": len(alerts),
                 "alerts": news}
        after_close = not incident.takes_repeats(received_at)
        if after_close:
            entry.update(after_close=True, minutes_after_end=_minutes(received_at, incident.ended_moment()))
        self.index.note(incident, entry)
        self.metrics.repeats.labels(run.scenario.name).inc()
        log.info("repeat of %s noted on %s (%s%s)", ", ".join(names), incident.id, incident.state,
                 f", {incident.status} {entry['minutes_after_end']} minutes ago" if after_close else "")
        return {"incident": incident.id, "scenario": run.scenario.name, "state": incident.state, "alerts": names,
                **({"after_close": True} if after_close else {})}

    def _resolved(self, alerts: list[Alert], received_at: datetime) -> list[dict[str, Any]]:
        by_incident: dict[str, tuple[Incident, list[dict[str, Any]]]] = {}
        answers = []
        for alert in alerts:
            entry = {"name": alert.name, "fingerprint": alert.fingerprint, "ends_at": alert_iso(alert.ends_at)}
            route = self.mapping.route(alert.name)
            incident = self.index.holding(self.settings.key(route.scenario), entry) if route else None
            answers.append({"incident": incident.id if incident else None, "alert": alert.name,
                            "fingerprint": alert.fingerprint})
            if incident is not None:
                by_incident.setdefault(incident.id, (incident, []))[1].append(entry)
        for incident, entries in by_incident.values():
            self.index.note(incident, {"event": Event.RESOLVED, "at": iso(received_at), "alerts": entries})
            log.info("resolved: %s noted on %s", ", ".join(sorted({e["name"] for e in entries})), incident.id)
        return answers


def raises(severity: str, incident_severity: str | None) -> bool:
    """Alerts at this severity make the incident more severe than it was run at. An incident whose severity is not
    known yet is not raised: unknown is no evidence that it was less severe."""
    return incident_severity in SEVERITIES and SEVERITIES.index(severity) < SEVERITIES.index(incident_severity)


def noted_alerts(alerts: list[Alert]) -> list[dict[str, Any]]:
    """The alerts as the record keeps them, and the startsAt the sender said when it was in the future: the record
    counts from the arrival then, but a re-send of the same firing is told by the sender's."""
    return [{**entry, "sent_starts_at": alert_iso(alert.future_starts_at)} if alert.future_starts_at else entry
            for alert, entry in zip(alerts, alert_vars(alerts), strict=True)]


def outlived(alerts: list[dict[str, Any]], holders: dict, received_at: datetime) -> list[dict[str, Any]]:
    """The incidents that ran for these very firings and ended with a verdict: how long after it each still fires."""
    by_incident: dict[str, tuple[Incident, list[str]]] = {}
    for alert in alerts:
        incident = holders.get(firing_of(alert))
        if incident is not None and incident.has_verdict():
            by_incident.setdefault(incident.id, (incident, []))[1].append(alert["name"])
    return [{"incident": incident.id, "status": incident.status, "ended_at": iso(incident.ended_moment()),
             "minutes": _minutes(received_at, incident.ended_moment()), "alerts": sorted(set(names))}
            for incident, names in by_incident.values()]


def _minutes(later: datetime, earlier: datetime | None) -> float | None:
    return round((later - earlier).total_seconds() / 60, 1) if earlier else None


def webhook_document(alerts: list[Alert]) -> dict[str, Any]:
    """A version 4 body holding just these alerts, for the run's `synap-play alert --payload -`."""
    return {
        "version": "4", "status": "firing", "receiver": "synap-play serve", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "", "truncatedAlerts": 0,
        "alerts": [{
            "status": alert.status, "labels": alert.labels, "annotations": alert.annotations,
            # As the sender said it (a startsAt in the future included): the run takes it the way serve did.
            **({"startsAt": _precise(alert.future_starts_at or alert.starts_at)}
               if (alert.future_starts_at or alert.starts_at) else {}),
            "fingerprint": alert.fingerprint,
        } for alert in alerts],
    }


def _precise(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
