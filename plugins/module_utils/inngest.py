# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one HTTP client every synap.ops Inngest module uses (inngest_runs_api.py reads and cancels runs through it).

It speaks only the endpoints listed in the project's Inngest API notes. The signing key and the event key
never appear in anything it returns or raises: the event key travels in the URL path, so messages name
that path with a placeholder.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from http.client import HTTPException
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode

from ansible.module_utils.basic import env_fallback
from ansible_collections.synap.ops.plugins.module_utils.http_api import (
    describe_body,
    failure_kind,
    failure_reason,
    is_html,
    open_request,
)
from ansible_collections.synap.ops.plugins.module_utils.redact import redact_url

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    HAS_PROMETHEUS_CLIENT = False
else:
    HAS_PROMETHEUS_CLIENT = True

EVENTS_PAGE_LIMIT = 51  # the server's maximum for GET /v1/events
FRACTION = re.compile(r"\.(\d+)")


def inngest_argument_spec(event_key=False):
    """Connection options shared by every Inngest module (documented once in synap.ops.inngest)."""
    spec = dict(
        url=dict(type="str", default="http://localhost:8288"),
        signing_key=dict(type="str", no_log=True, fallback=(env_fallback, ["INNGEST_SIGNING_KEY"])),
        timeout=dict(type="float", default=10.0),
        validate_certs=dict(type="bool", default=True),
    )
    if event_key:
        spec["event_key"] = dict(type="str", no_log=True, fallback=(env_fallback, ["INNGEST_EVENT_KEY"]))
    return spec


class InngestError(Exception):
    """A request that did not get a usable answer. The message is one line, safe to show.

    ``kind`` is the failure kind of the info modules' results: http_api.failure_kind() for the transport and
    HTTP statuses, ``not_understood`` for an answer of the wrong shape, ``query_failed`` for a GraphQL error.
    """

    def __init__(self, message, status=None, body=None, kind=None):
        super().__init__(message)
        self.status = status
        self.body = body
        self.kind = kind or (failure_kind(status=status) if status is not None else "error")


def utc_now():
    return datetime.now(UTC)


def rfc3339(moment):
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text):
    """An RFC 3339 time as an aware datetime, or None."""
    if not text:
        return None
    text = text.strip().replace("Z", "+00:00")
    # Before Python 3.11, fromisoformat wants exactly 3 or 6 fraction digits; servers send 0 to 9.
    text = FRACTION.sub(lambda match: "." + (match.group(1) + "000000")[:6], text)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def seconds_since(text, now=None):
    moment = parse_time(text)
    if moment is None:
        return None
    return round(((now or utc_now()) - moment).total_seconds(), 1)


class InngestClient:
    def __init__(self, params):
        self.base_url = params["url"].rstrip("/")
        self.shown_url = redact_url(self.base_url)
        self.signing_key = params.get("signing_key")
        self.event_key = params.get("event_key")
        self.timeout = params["timeout"]
        self.validate_certs = params["validate_certs"]

    # -- plumbing

    def request(self, method, path, query=None, body=None, authenticated=True, shown_path=None, raw=False):
        """Send one request and return ``(status, parsed JSON body or text)``; HTTP errors raise InngestError.

        ``shown_path`` replaces ``path`` in messages when the path itself carries a secret.
        """
        shown = f"{method} {shown_path or path}"
        at = self.shown_url
        url = self.base_url + path + ("?" + urlencode(query, doseq=True) if query else "")
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        if authenticated and self.signing_key:
            headers["Authorization"] = f"Bearer {self.signing_key}"
        try:
            response = open_request(url, method, data, headers, timeout=self.timeout,
                                    validate_certs=self.validate_certs, follow_redirects=False)
            status = response.getcode()
            content_type = response.headers.get("Content-Type", "")
            text = response.read().decode("utf-8", "replace")
        except HTTPError as exc:
            text = exc.read().decode("utf-8", "replace") if exc.fp else ""
            parsed = _parse_json(text)
            raise InngestError(f"{shown} at {at} answered HTTP {exc.code}{_error_detail(parsed)}",
                               status=exc.code, body=parsed) from None
        except (URLError, OSError, HTTPException, ValueError) as exc:
            raise InngestError(f"cannot reach Inngest at {at} ({shown}): {failure_reason(exc, self.timeout)}",
                               kind=failure_kind(exc)) from None
        if raw:
            return status, text, content_type
        parsed = _parse_json(text)
        if text and parsed is None:
            raise InngestError(f"{shown} at {at} answered {status} with {describe_body(content_type, text)}, "
                               "not JSON: is this really an Inngest server?", status=status, kind="not_understood")
        return status, parsed

    def get_unless_missing(self, path):
        """``(True, body)`` of GET ``path``, or ``(False, None)`` when the server answers 404 (it does not know it)."""
        try:
            return True, self.request("GET", path)[1]
        except InngestError as exc:
            if exc.status == 404:
                return False, None
            raise

    # -- health and queue

    def health(self):
        """``{healthy, status_code, detail, kind}``; a 200 that is not the JSON body of /health is unhealthy.

        ``kind`` is None when the health body was read (healthy or not), else the failure kind; ``healthy`` is
        None when no HTTP answer came at all (nothing was measured).
        """
        try:
            status, text, content_type = self.request("GET", "/health", authenticated=False, raw=True)
        except InngestError as exc:
            healthy = None if exc.status is None else False
            return {"healthy": healthy, "status_code": exc.status, "detail": str(exc), "kind": exc.kind}
        body = _parse_json(text)
        if isinstance(body, dict) and body.get("status") == 200:
            return {"healthy": True, "status_code": status, "detail": body.get("message") or "OK", "body": body,
                    "kind": None}
        if isinstance(body, dict) and isinstance(body.get("status"), int):
            # Inngest's own body, saying it is not well: read, and unhealthy.
            detail = f"GET /health at {self.shown_url} says status {body['status']}: {body.get('message') or ''}"
            return {"healthy": False, "status_code": status, "detail": detail.rstrip(": "), "kind": None}
        kind = describe_body(content_type, text)
        detail = (f"GET /health at {self.shown_url} answered {status} with {kind} instead of Inngest's JSON health "
                  "body: a web UI or another server answers there (the /api/health trap), so this is not a working "
                  "Inngest")
        return {"healthy": False, "status_code": status, "detail": detail, "kind": "not_understood"}

    def queue_depth(self):
        """``inngest_queue_depth`` from /metrics (sum over its label sets), or InngestError."""
        status, text, content_type = self.request("GET", "/metrics", authenticated=False, raw=True)
        where = f"GET /metrics at {self.shown_url}"
        if is_html(content_type, text):
            raise InngestError(f"{where} answered {status} with an HTML page, not Prometheus text",
                               kind="not_understood")
        try:
            for family in text_string_to_metric_families(text):
                if family.name == "inngest_queue_depth":
                    return int(sum(sample.value for sample in family.samples if sample.name == family.name))
        except ValueError as exc:
            raise InngestError(f"{where} is not Prometheus text ({exc})", kind="not_understood") from None
        raise InngestError(f"{where} has no inngest_queue_depth gauge", kind="not_understood")

    # -- functions

    def functions(self, app):
        """Functions registered by ``app`` as ``[{slug, name, id, triggers}]``; None if the app is unknown."""
        known, body = self.get_unless_missing("/v1/apps/{}/functions".format(quote(app, safe="")))
        if not known:
            return None
        if not isinstance(body, list):
            raise InngestError(f"GET /v1/apps/{app}/functions at {self.shown_url} did not answer a list",
                               kind="not_understood")
        functions = []
        for item in body:
            config = item.get("config")
            if isinstance(config, str):
                config = _parse_json(config) or {}
            functions.append({
                "slug": item.get("id"),
                "name": item.get("name"),
                "id": item.get("internal_id"),
                "triggers": [t.get("event") or t.get("cron") for t in (config or {}).get("triggers") or []
                             if isinstance(t, dict)],
                "archived": bool(item.get("archived_at")),
            })
        return functions

    # -- events

    def events(self, start, until=None, name=None, max_events=1000):
        """Events received in [start, until], newest first, over GET /v1/events pages.

        Returns ``(events, truncated)``; ``truncated`` is true when ``max_events`` stopped the scan.
        """
        query = {"limit": EVENTS_PAGE_LIMIT, "received_after": rfc3339(start)}
        if until:
            query["received_before"] = rfc3339(until)
        if name:
            query["name"] = name
        events = []
        while True:
            status, body = self.request("GET", "/v1/events", query=query)
            page = (body or {}).get("data") if isinstance(body, dict) else None
            if not isinstance(page, list):
                raise InngestError(f"GET /v1/events at {self.shown_url} did not answer {{\"data\": [...]}}",
                                   kind="not_understood")
            events.extend(page)
            if len(events) >= max_events:
                return events[:max_events], True
            if len(page) < EVENTS_PAGE_LIMIT or not page[-1].get("id") or query.get("cursor") == page[-1]["id"]:
                return events, False
            query["cursor"] = page[-1]["id"]

    def send_events(self, events):
        """POST /e/{event key}; returns the ids the server assigned."""
        if not self.event_key:
            raise InngestError("no event key: pass event_key or set INNGEST_EVENT_KEY "
                               "(a dev server accepts any value)")
        status, body = self.request("POST", "/e/{}".format(quote(self.event_key, safe="")), body=events,
                                    authenticated=False, shown_path="/e/<event key>")
        if not isinstance(body, dict) or not isinstance(body.get("ids"), list):
            raise InngestError(f"POST /e/<event key> at {self.shown_url} did not answer {{\"ids\": [...]}}")
        return body["ids"]


def _parse_json(text):
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _error_detail(body):
    if isinstance(body, dict):
        if isinstance(body.get("error"), str):
            return ": {}".format(body["error"])
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return ": {}".format(errors[0].get("message"))
    return ""
