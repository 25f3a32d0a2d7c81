"""Alert intake: Alertmanager webhook payloads (version 4), and the editable alert -> scenario mapping.

Pure functions and small data classes only, so the CLI and the EDA event source share them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from synap_play.catalog import SEVERITIES, Scenario

SUPPORTED_VERSION = "4"
ALERT_STATUSES = ("firing", "resolved")
# Alertmanager writes RFC 3339 with nanoseconds; Python's parser takes at most microseconds.
_FRACTION = re.compile(r"(\.\d{6})\d+")


class AlertError(ValueError):
    """A payload or mapping synap-play refuses; the message says what is wrong."""


class PayloadError(AlertError):
    pass


class MappingError(AlertError):
    pass


@dataclass(frozen=True)
class Alert:
    name: str
    status: str
    severity_label: str | None
    starts_at: datetime | None
    fingerprint: str
    labels: dict[str, str] = field(default_factory=dict, compare=False)
    annotations: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class AlertRoute:
    scenario: str
    severity: str | None = None  # pinned by the mapping, whatever the alert's label says


@dataclass(frozen=True)
class AlertMapping:
    alerts: dict[str, AlertRoute]
    severities: dict[str, str]
    source: str = ""

    def route(self, alert_name: str) -> AlertRoute | None:
        return self.alerts.get(alert_name)

    def severity_of(self, alert: Alert) -> str | None:
        route = self.route(alert.name)
        if route and route.severity:
            return route.severity
        if alert.severity_label:
            return self.severities.get(alert.severity_label.lower())
        return None


@dataclass
class ScenarioRun:
    """One scenario to run for one or more firing alerts."""

    scenario: Scenario
    severity: str
    started_at: datetime | None
    alerts: list[Alert]

    @property
    def alert_names(self) -> list[str]:
        return sorted({a.name for a in self.alerts})


@dataclass
class IntakePlan:
    runs: list[ScenarioRun]
    resolved: list[Alert]
    unknown: list[Alert]
    unavailable: list[tuple[Alert, str]]  # mapped to a scenario whose playbook is not installed


# -- payload ------------------------------------------------------------------------------------------
def parse_time(text: Any, where: str) -> datetime | None:
    if text in (None, "", "0001-01-01T00:00:00Z"):  # Alertmanager's zero time means "not set"
        return None
    if not isinstance(text, str):
        raise PayloadError(f"{where} must be an RFC 3339 time string, got {type(text).__name__}")
    try:
        moment = datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip()).replace("Z", "+00:00"))
    except ValueError as exc:
        raise PayloadError(f"{where} {text!r} is not an RFC 3339 time such as 2026-11-29T03:15:00Z") from exc
    if moment.tzinfo is None:
        raise PayloadError(f"{where} {text!r} has no time zone")
    return moment


def parse_payload(text: str) -> list[Alert]:
    """Validate an Alertmanager webhook body and return its alerts; PayloadError names the first problem."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"payload is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    return alerts_from_document(document)


def alerts_from_document(document: Any) -> list[Alert]:
    if not isinstance(document, dict):
        raise PayloadError("payload must be a JSON object with 'version', 'status' and 'alerts'")
    version = document.get("version")
    if str(version) != SUPPORTED_VERSION:
        raise PayloadError(f"payload version {version!r} is not supported; synap-play reads Alertmanager webhook "
                           f"version {SUPPORTED_VERSION}")
    group_status = document.get("status")
    if group_status not in ALERT_STATUSES:
        raise PayloadError(f"payload status {group_status!r} must be 'firing' or 'resolved'")
    entries = document.get("alerts")
    if not isinstance(entries, list) or not entries:
        raise PayloadError("payload has no 'alerts' list, or it is empty")
    alerts = []
    for index, entry in enumerate(entries):
        where = f"alerts[{index}]"
        if not isinstance(entry, dict):
            raise PayloadError(f"{where} must be an object")
        labels = entry.get("labels")
        if not isinstance(labels, dict) or not isinstance(labels.get("alertname"), str) or not labels["alertname"]:
            raise PayloadError(f"{where} has no labels.alertname")
        status = entry.get("status", group_status)
        if status not in ALERT_STATUSES:
            raise PayloadError(f"{where}.status {status!r} must be 'firing' or 'resolved'")
        fingerprint = entry.get("fingerprint", "")
        if not isinstance(fingerprint, str):
            raise PayloadError(f"{where}.fingerprint must be a string")
        annotations = entry.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise PayloadError(f"{where}.annotations must be an object")
        severity = labels.get("severity")
        alerts.append(Alert(
            name=labels["alertname"], status=status, severity_label=str(severity) if severity is not None else None,
            starts_at=parse_time(entry.get("startsAt"), f"{where}.startsAt"), fingerprint=fingerprint,
            labels={str(k): str(v) for k, v in labels.items()},
            annotations={str(k): str(v) for k, v in annotations.items()},
        ))
    return alerts


# -- mapping ------------------------------------------------------------------------------------------
def load_mapping(path: Path | None, catalog: dict[str, Scenario]) -> AlertMapping:
    """The catalog's own `alerts:` lists, overlaid by the mapping file (which wins). path None: catalog only."""
    routes = {name: AlertRoute(s.name) for s in catalog.values() for name in s.alerts}
    severities: dict[str, str] = {}
    if path is None:
        return AlertMapping(routes, severities, source="the scenario catalog")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise MappingError(f"alert mapping {path} not found") from exc
    except yaml.YAMLError as exc:
        raise MappingError(f"alert mapping {path} is not valid YAML: {exc}".splitlines()[0]) from exc
    if not isinstance(document, dict):
        raise MappingError(f"alert mapping {path} must be a mapping with 'alerts' and 'severities'")
    for name, target in (document.get("alerts") or {}).items():
        if isinstance(target, str):
            target = {"scenario": target}
        if not isinstance(target, dict) or not target.get("scenario"):
            raise MappingError(f"alert {name!r} in {path} needs a scenario name, or {{scenario: ..., severity: ...}}")
        severity = target.get("severity")
        if severity is not None and severity not in SEVERITIES:
            raise MappingError(f"alert {name!r} in {path}: severity {severity!r} is not one of P0-P3")
        routes[str(name)] = AlertRoute(target["scenario"], severity)
    for label, severity in (document.get("severities") or {}).items():
        if severity not in SEVERITIES:
            raise MappingError(f"severity label {label!r} in {path} maps to {severity!r}, not one of P0-P3")
        severities[str(label).lower()] = severity
    return AlertMapping(routes, severities, source=str(path))


def most_severe(severities: list[str]) -> str:
    return min(severities, key=SEVERITIES.index)


def plan_intake(alerts: list[Alert], mapping: AlertMapping, catalog: dict[str, Scenario],
                severity_override: str | None = None) -> IntakePlan:
    """Group firing alerts by scenario (one run each); resolved, unknown and uninstalled ones are set aside.

    A run's severity: the operator's override, else the most severe of its alerts' (mapping pin, then severity
    label), else the scenario's default. Its start: the earliest startsAt, so escalation counts from the alert.
    """
    plan = IntakePlan(runs=[], resolved=[], unknown=[], unavailable=[])
    grouped: dict[str, list[Alert]] = {}
    for alert in alerts:
        route = mapping.route(alert.name)
        if alert.status == "resolved":
            plan.resolved.append(alert)
        elif route is None:
            plan.unknown.append(alert)
        elif route.scenario not in catalog or not catalog[route.scenario].available:
            plan.unavailable.append((alert, route.scenario))
        else:
            grouped.setdefault(route.scenario, []).append(alert)
    for name, group in grouped.items():
        scenario = catalog[name]
        severities = [s for s in (mapping.severity_of(a) for a in group) if s]
        starts = [a.starts_at for a in group if a.starts_at]
        plan.runs.append(ScenarioRun(
            scenario=scenario,
            severity=severity_override or (most_severe(severities) if severities else scenario.severity),
            started_at=min(starts) if starts else None,
            alerts=group,
        ))
    plan.runs.sort(key=lambda run: (SEVERITIES.index(run.severity), run.scenario.name))
    return plan
