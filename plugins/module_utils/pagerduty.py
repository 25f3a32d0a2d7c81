# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PagerDuty Events API v2: build an event, send it, retry what the API says to retry.

``POST /v2/enqueue`` answers 202 ``{"status": "success", "message": "Event processed", "dedup_key": ...}`` for an
accepted event, 400 ``{"status": "invalid event", "message": ..., "errors": [...]}`` for one it will never accept
(not retried), 429 when rate limited and 5xx when it could not take the event now (both retried, with exponential
backoff, honouring ``Retry-After``).

The routing key is the integration's credential: it travels in the body only, and nothing this module returns or
raises holds it.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.client import HTTPException
from urllib.error import HTTPError, URLError

from ansible_collections.synap.ops.plugins.module_utils.http_api import (
    failure_kind,
    failure_reason,
    open_request,
)
from ansible_collections.synap.ops.plugins.module_utils.redact import redact_url

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
CUT = "..."
# The payload fields a trigger may carry besides summary, source and severity.
PAYLOAD_OPTIONAL = ("timestamp", "component", "group", "class", "custom_details")
# Answers worth another attempt: rate limited, or PagerDuty could not take the event now.
RETRY_STATUSES = (429, 500, 502, 503, 504)
# Transport failures worth another attempt (the connection was refused or broke off); a timeout, a name that
# does not resolve and a TLS failure are not: the next attempt would fail the same way, only later.
RETRY_KINDS = ("refused", "error")
# A trigger's custom_details.findings: one line each, so that however much a diagnosis found, the event stays far
# below PagerDuty's 512 KB limit (about 15 KB of findings at most); the incident record keeps them whole.
MAX_FINDINGS = 50
MAX_FINDING_CHARS = 300


class EventError(ValueError):
    """An event this module will not send, for a reason the caller can fix (the message says which)."""


class Delivery:
    """What came of one event: ``delivered`` (PagerDuty answered 2xx), the last ``status`` (None: no HTTP answer),
    ``dedup_key`` (PagerDuty's, else the one sent), ``attempts`` made, PagerDuty's ``message`` and ``errors``,
    ``statuses`` of every attempt, and ``detail``, one line on why it was not delivered."""

    def __init__(self, event):
        self.event = event
        self.delivered = False
        self.status = None
        self.dedup_key = event.get("dedup_key")
        self.attempts = 0
        self.message = None
        self.errors = []
        self.statuses = []
        self.detail = None


def severity_ok(severity):
    return severity in SEVERITIES


def cut_summary(summary):
    """``summary`` on one line and at most MAX_SUMMARY characters (PagerDuty rejects a longer one)."""
    text = " ".join(str(summary).split())
    return text if len(text) <= MAX_SUMMARY else text[:MAX_SUMMARY - len(CUT)] + CUT


def finding_line(finding):
    """One finding as one line: a string as it is; a mapping (the incident record's) as host: look-up: summary."""
    if isinstance(finding, dict):
        parts = (finding.get("host"), finding.get("look_up") or finding.get("source"),
                 finding.get("summary") or finding.get("description") or finding.get("msg"))
        text = ": ".join(str(part) for part in parts if part not in (None, ""))
    else:
        text = str(finding)
    text = " ".join(text.split())
    return text if len(text) <= MAX_FINDING_CHARS else text[:MAX_FINDING_CHARS - len(CUT)] + CUT


def finding_lines(findings):
    """``findings`` as one line each, at most MAX_FINDINGS lines, the last of them saying how many were left out."""
    lines = [finding_line(finding) for finding in findings or ()]
    if len(lines) > MAX_FINDINGS:
        left_out = len(lines) - (MAX_FINDINGS - 1)
        lines = lines[:MAX_FINDINGS - 1] + [f"... and {left_out} more in the incident record"]
    return lines


def build_event(routing_key, action, dedup_key, summary=None, source=None, severity=None, timestamp=None,
                component=None, group=None, event_class=None, custom_details=None, links=None):
    """The v2 event for ``action``: a trigger carries a payload, an acknowledge or a resolve only the routing key,
    the action and the dedup key. A list under custom_details' ``findings`` is sent one line a finding
    (finding_lines). EventError when a required part is missing or out of range."""
    if action not in ACTIONS:
        raise EventError(f"event_action must be one of {', '.join(ACTIONS)}, got {action!r}")
    if not routing_key:
        raise EventError("routing_key is empty: give the integration key of the PagerDuty service (Events API v2)")
    if not dedup_key:
        raise EventError(f"dedup_key is empty: a {action} needs the key its trigger was sent with (the incident id)")
    if len(dedup_key) > MAX_DEDUP_KEY:
        raise EventError(f"dedup_key is {len(dedup_key)} characters long; PagerDuty takes at most {MAX_DEDUP_KEY}")
    event = {"routing_key": routing_key, "event_action": action, "dedup_key": dedup_key}
    if action != "trigger":
        return event
    missing = [name for name, value in (("summary", summary), ("source", source), ("severity", severity))
               if not value]
    if missing:
        raise EventError(f"a trigger needs {', '.join(missing)}: PagerDuty rejects a payload without them")
    if not severity_ok(severity):
        raise EventError(f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    payload = {"summary": cut_summary(summary), "source": str(source), "severity": severity}
    if isinstance(custom_details, dict) and isinstance(custom_details.get("findings"), list):
        custom_details = dict(custom_details, findings=finding_lines(custom_details["findings"]))
    for name, value in (("timestamp", timestamp), ("component", component), ("group", group),
                        ("class", event_class), ("custom_details", custom_details)):
        if value not in (None, "", {}):
            payload[name] = value
    event["payload"] = payload
    if links:
        event["links"] = [dict(link) for link in links]
    return event


def retry_after_seconds(value, now=None):
    """The wait a ``Retry-After`` header asks for, in seconds (delta-seconds or an HTTP date); None if absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _answer(url, event, timeout, validate_certs):
    """One POST: ``(status, Retry-After header, parsed body or None)``; HTTP error answers included. A request that
    got no HTTP answer raises ``_NoAnswer``."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    try:
        response = open_request(url, "POST", json.dumps(event), headers, timeout=timeout,
                                validate_certs=validate_certs, follow_redirects=False)
        status, header, text = response.getcode(), response.headers.get("Retry-After"), _read(response)
    except HTTPError as exc:
        try:
            text = _read(exc) if exc.fp else ""
        except (OSError, HTTPException):
            text = ""
        status, header = exc.code, exc.headers.get("Retry-After") if exc.headers else None
    except (URLError, OSError, HTTPException, ValueError) as exc:
        raise _NoAnswer(failure_reason(exc, timeout), failure_kind(exc)) from None
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    return status, header, body if isinstance(body, dict) else None


class _NoAnswer(Exception):
    def __init__(self, reason, kind):
        super().__init__(reason)
        self.kind = kind


def _read(response):
    return response.read(64 * 1024).decode("utf-8", "replace")


def send_event(event, url=DEFAULT_URL, timeout=10.0, validate_certs=True, max_attempts=3, retry_delay=1.0,
               max_retry_delay=30.0, sleep=time.sleep):
    """POST ``event`` until PagerDuty takes it, rejects it, or ``max_attempts`` are used up; return a Delivery.

    The n-th retry waits ``retry_delay * 2**(n-1)`` seconds (at most ``max_retry_delay``), or longer if the answer's
    ``Retry-After`` asks for it; an answer asking for more than ``max_retry_delay`` ends the retries there.
    """
    delivery = Delivery(event)
    shown = f"POST {redact_url(url)}"
    for attempt in range(1, max(1, max_attempts) + 1):
        delivery.attempts = attempt
        retry_after = None
        try:
            status, header, body = _answer(url, event, timeout, validate_certs)
        except _NoAnswer as exc:
            delivery.statuses.append(None)
            delivery.detail = f"{shown}: {exc}"
            retryable = exc.kind in RETRY_KINDS
        else:
            delivery.status = status
            delivery.statuses.append(status)
            body = body or {}
            delivery.message = _text(body.get("message"))
            delivery.errors = [_text(e) for e in body.get("errors") or [] if e is not None] \
                if isinstance(body.get("errors"), list) else []
            if 200 <= status < 300:
                delivery.delivered = True
                delivery.detail = None
                if isinstance(body.get("dedup_key"), str) and body["dedup_key"]:
                    delivery.dedup_key = body["dedup_key"]
                return delivery
            delivery.detail = _rejection(shown, status, body, delivery.errors)
            retryable = status in RETRY_STATUSES
            retry_after = retry_after_seconds(header)
        if not retryable or attempt >= max_attempts:
            break
        wait = min(retry_delay * 2 ** (attempt - 1), max_retry_delay)
        if retry_after is not None:
            if retry_after > max_retry_delay:
                delivery.detail += (f"; PagerDuty asks to retry after {retry_after:g} s, longer than "
                                    f"max_retry_delay ({max_retry_delay:g} s): not retried")
                break
            wait = max(wait, retry_after)
        sleep(wait)
    if delivery.attempts > 1:
        delivery.detail += f" (after {delivery.attempts} attempts)"
    return delivery


def deliver(channels, action, dedup_key, payload=None, timeout=10.0, max_attempts=3, retry_delay=1.0,
            max_retry_delay=30.0):
    """Send one event to each channel (a mapping with name, routing_key and optionally url); return what came of
    each, shaped as the incident record keeps a notification, without the routing key. Never raises for an event
    that could not be built or delivered: that is in the channel's ``error``."""
    outcomes = []
    for channel in channels:
        outcome = {"channel": str(channel.get("name") or "unnamed"), "type": "pagerduty", "event_action": action,
                   "dedup_key": dedup_key, "delivered": False, "status": None, "attempts": 0, "error": None}
        try:
            event = build_event(str(channel.get("routing_key") or ""), action, dedup_key, **(payload or {}))
        except EventError as exc:
            outcome["error"] = str(exc)
        else:
            delivery = send_event(event, url=str(channel.get("url") or DEFAULT_URL), timeout=timeout,
                                  max_attempts=max_attempts, retry_delay=retry_delay, max_retry_delay=max_retry_delay)
            outcome.update(delivered=delivery.delivered, status=delivery.status, attempts=delivery.attempts,
                           dedup_key=delivery.dedup_key, error=delivery.detail)
        outcomes.append(outcome)
    return outcomes


def _rejection(shown, status, body, errors):
    if status == 400:
        what = "rejected the event as invalid"
    elif status == 429:
        what = "rate limited the event"
    elif status >= 500:
        what = "could not take the event now"
    else:
        what = "did not take the event"
    detail = f"{shown} answered HTTP {status}: PagerDuty {what}"
    message = _text(body.get("message"))
    if message:
        detail += f" ({message})"
    if errors:
        detail += ": " + "; ".join(errors)
    return detail


def _text(value):
    """A value of PagerDuty's answer as one short line."""
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text[:500]
