# Copyright: Synap operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Alert intake: Alertmanager webhook payloads (version 4), the scenario catalog and the editable alert -> scenario
mapping (playbooks/alerts.yml).

Pure Python and PyYAML only, so that everything that takes alerts in shares one copy: synap-play's ``alert``
command and the collection's EDA event source (extensions/eda), which runs inside ansible-rulebook from an
installed collection, with no synap-play beside it.

The catalog's scenarios are read duck-typed: load_mapping and plan_intake take any mapping of name -> object with
``name``, ``severity``, ``alerts`` and ``available`` (the catalog's Scenario, plugin_utils/catalog.py).
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import yaml
from ansible_collections.synap.ops.plugins.plugin_utils.catalog import PLAYBOOKS_DIR
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import SEVERITIES

DEFAULT_ALERT_MAP = PLAYBOOKS_DIR / "alerts.yml"

SUPPORTED_VERSION = "4"
# The largest webhook body taken in (Alertmanager's own bodies are kilobytes; 5,000 alerts are ~4 MB).
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
_READ_CHUNK = 1024 * 1024
ALERT_STATUSES = ("firing", "resolved")
# Alertmanager writes RFC 3339 with nanoseconds; Python's parser takes at most microseconds.
_FRACTION = re.compile(r"(\.\d{6})\d+")


class AlertError(ValueError):
    """A payload, mapping or catalog that is refused; the message says what is wrong."""


class PayloadError(AlertError):
    pass


class MappingError(AlertError):
    pass


# -- alerts and what to run for them ----------------------------------------------------------------------
@dataclass(frozen=True)
class Alert:
    name: str
    status: str
    severity_label: str | None
    starts_at: datetime | None
    fingerprint: str
    labels: dict[str, str] = field(default_factory=dict, compare=False)
    annotations: dict[str, str] = field(default_factory=dict, compare=False)
    # A startsAt later than the payload's arrival, as the payload said it; starts_at is then the arrival.
    future_starts_at: datetime | None = field(default=None, compare=False)
    # When a resolved alert ended (endsAt); None while it fires (Alertmanager's zero time).
    ends_at: datetime | None = field(default=None, compare=False)

    @property
    def note(self) -> str | None:
        if self.future_starts_at is None:
            return None
        return (f"startsAt {iso(self.future_starts_at)} is in the future; the incident counts from "
                f"{iso(self.starts_at)}, when the alert was received")

    @property
    def summary(self) -> str:
        return self.annotations.get("summary") or self.annotations.get("description") or ""


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

    scenario: Any  # the catalog's scenario object
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
def iso(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC, to the second, with a Z: 2026-11-29T03:15:00Z (None for None)."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if moment else None


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


def _over_cap(size: int) -> PayloadError:
    return PayloadError(f"payload is {_megabytes(size)}, over the cap of {MAX_PAYLOAD_BYTES // 2**20} MB; "
                        f"send the alerts in smaller groups (Alertmanager's group_by / max_alerts)")


def read_payload(stream: IO[bytes]) -> str:
    """A webhook body from a file or stdin, as text; PayloadError when it is over MAX_PAYLOAD_BYTES or not UTF-8.
    Nothing past the cap is kept in memory."""
    try:  # a regular file says its size at once
        status = os.fstat(stream.fileno())
        size = status.st_size if stat.S_ISREG(status.st_mode) else None
    except (OSError, ValueError, AttributeError):  # a pipe, a terminal, an in-memory stream
        size = None
    if size is not None and size > MAX_PAYLOAD_BYTES:
        raise _over_cap(size)
    kept, total = [], 0
    while True:
        chunk = stream.read(_READ_CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total <= MAX_PAYLOAD_BYTES:
            kept.append(chunk)
        elif total > 10 * MAX_PAYLOAD_BYTES:  # an endless stream: stop counting
            raise PayloadError(f"payload is more than {_megabytes(total - len(chunk))}, over the cap of "
                               f"{_megabytes(MAX_PAYLOAD_BYTES)}; send the alerts in smaller groups")
    if total > MAX_PAYLOAD_BYTES:
        raise _over_cap(total)
    return decode_payload((b"" if not kept or isinstance(kept[0], bytes) else "").join(kept))


def decode_payload(data: bytes | str) -> str:
    """A body's bytes as text; PayloadError when they are not UTF-8."""
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"payload is not UTF-8 text (byte {exc.start} of {len(data)}); give an Alertmanager "
                           f"webhook body (JSON, version 4)") from exc


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


def parse_payload(text: str, received_at: datetime | None = None) -> list[Alert]:
    """Validate an Alertmanager webhook body and return its alerts; PayloadError names the first problem."""
    if len(text) > MAX_PAYLOAD_BYTES:
        raise _over_cap(len(text))
    if not text.strip():
        raise PayloadError("payload is empty; give an Alertmanager webhook body (JSON, version 4)")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"payload is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise PayloadError("payload is nested too deeply to be an Alertmanager webhook body") from exc
    return alerts_from_document(document, received_at)


def alerts_from_document(document: Any, received_at: datetime | None = None) -> list[Alert]:
    """The alerts of a webhook body. A startsAt after received_at (default: now) is taken as received_at, and
    the alert keeps what the payload said in future_starts_at: an incident does not start in the future."""
    received_at = received_at or datetime.now(UTC)
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
        starts_at = parse_time(entry.get("startsAt"), f"{where}.startsAt")
        future = starts_at if starts_at is not None and starts_at > received_at else None
        alerts.append(Alert(
            name=labels["alertname"], status=status, severity_label=str(severity) if severity is not None else None,
            starts_at=received_at if future else starts_at, fingerprint=fingerprint,
            labels={str(k): str(v) for k, v in labels.items()},
            annotations={str(k): str(v) for k, v in annotations.items()},
            future_starts_at=future,
            ends_at=_ends_at(entry.get("endsAt")) if status == "resolved" else None,
        ))
    return alerts


def _ends_at(text: Any) -> datetime | None:
    """endsAt of a resolved alert. Nothing is decided by it (a resolved alert runs nothing), so a malformed one is
    left out rather than refusing the payload it came in."""
    try:
        return parse_time(text, "endsAt")
    except PayloadError:
        return None


# -- mapping ------------------------------------------------------------------------------------------
def load_mapping(path: Path | None, catalog: dict[str, Any]) -> AlertMapping:
    """The catalog's own `alerts:` lists, overlaid by the mapping file (which wins). path None: catalog only."""
    routes = {name: AlertRoute(s.name) for s in catalog.values() for name in s.alerts}
    severities: dict[str, str] = {}
    if path is None:
        return AlertMapping(routes, severities, source="the scenario catalog")
    path = Path(path)
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


def plan_intake(alerts: list[Alert], mapping: AlertMapping, catalog: dict[str, Any],
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


def alert_vars(alerts: list[Alert]) -> list[dict[str, Any]]:
    """The alerts that started a run, as the playbooks (incident_alerts) and the record see them."""
    return [{"name": a.name, "fingerprint": a.fingerprint, "starts_at": iso(a.starts_at), "severity": a.severity_label,
             "summary": a.summary, **({"note": a.note} if a.note else {})}
            for a in alerts]
