"""The HTTP side: routes, the bearer token, the size cap, and the answers' shapes.

    POST /api/alerts            an Alertmanager webhook (version 4): 202, 400, 401, 413, 503
    GET  /api/incidents         open incidents and the most recent ones (?last=N)
    GET  /api/incidents/<id>    one incident: its record, serve's notes, the steps that need approval
    POST /api/incidents/<id>/approvals/<step>   {"decision": "approve"|"decline", "by": "<name>"}: 202 with the
                                approval run queued, 200 declined; 404 no such step waiting, 409 not now
    GET  /healthz               200 while alerts are taken, 503 while stopping
    GET  /metrics               Prometheus text format
    GET  /incidents...          the incident pages (serve/pages.py)

Every error answer is JSON, {"error": "<one line>"}. With a token, /api/* needs it; /healthz and /metrics do not
(they name scenarios and alert names, never a finding).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

try:  # aiohttp's own answer to Expect: 100-continue, for the senders that pass the checks (a private name)
    from aiohttp.web_urldispatcher import _default_expect_handler
except ImportError:  # then no "100 Continue": a sender waits a moment (curl: 1 s) and sends its body anyway
    _default_expect_handler = None

from synap_play import collection

collection.load()

from ansible_collections.synap.ops.plugins.plugin_utils.alerts import (
    MAX_PAYLOAD_BYTES,
    PayloadError,
    decode_payload,
    parse_payload,
)

from synap_play import held_steps
from synap_play.serve.approvals import ApprovalDesk, Refused, StepDecision
from synap_play.serve.incidents import INCIDENT_ID, Incident, IncidentIndex
from synap_play.serve.intake import RETRY_AFTER_SECONDS, Intake
from synap_play.serve.metrics import ServeMetrics
from synap_play.serve.notes import read_notes, read_record
from synap_play.serve.pages import TOKEN_COOKIE, Pages
from synap_play.serve.runs import RunQueue
from synap_play.serve.settings import Settings

_CHUNK = 256 * 1024
# How much of a body over the cap is read and dropped before the connection is simply closed.
_DRAIN_LIMIT = 10 * MAX_PAYLOAD_BYTES
# The text format generate_latest writes, under the name every Prometheus version takes (prometheus_client's own
# CONTENT_TYPE_LATEST says version=1.0.0 from 0.22 on, which Prometheus 2 does not know).
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_LAST = 20
MAX_LAST = 500
CAP_MESSAGE = (f"payload is over the cap of {MAX_PAYLOAD_BYTES // 2**20} MB; send the alerts in smaller groups "
               f"(Alertmanager's group_by / max_alerts)")


def error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


class Routes:
    def __init__(self, settings: Settings, intake: Intake, runs: RunQueue, index: IncidentIndex,
                 metrics: ServeMetrics):
        self.settings = settings
        self.approvals = ApprovalDesk(settings, index, runs)
        self.intake = intake
        self.runs = runs
        self.index = index
        self.metrics = metrics
        self._expected = f"Bearer {settings.token}".encode() if settings.token else None
        self.pages = Pages(index, self.approvals, settings.incidents_dir, settings.operator, self._authorized,
                           settings.token, self._find, record_and_notes)

    def app(self) -> web.Application:
        # receive_alerts reads its body itself, against the intake's cap; client_max_size holds for anything else.
        app = web.Application(client_max_size=MAX_PAYLOAD_BYTES)
        app.router.add_post("/api/alerts", self.receive_alerts, expect_handler=self.expect_alerts)
        app.router.add_get("/api/incidents", self.list_incidents)
        app.router.add_get("/api/incidents/{incident_id}", self.show_incident)
        app.router.add_post("/api/incidents/{incident_id}/approvals/{step}", self.decide)
        app.router.add_get("/healthz", self.health)
        app.router.add_get("/metrics", self.metrics_text)
        self.pages.add_routes(app)
        return app

    def _authorized(self, request: web.Request) -> bool:
        """The bearer token, or (for the incident pages' browser) the cookie the sign-in page set with it."""
        if self._expected is None:
            return True
        given = request.headers.get("Authorization", "").encode()
        if hmac.compare_digest(given, self._expected):
            return True
        cookie = request.cookies.get(TOKEN_COOKIE)
        return cookie is not None and hmac.compare_digest(f"Bearer {cookie}".encode(), self._expected)

    def _unauthorized(self) -> web.Response:
        return error(401, "missing or wrong bearer token (Authorization: Bearer <token of --token-file>)",
                     **{"WWW-Authenticate": 'Bearer realm="synap-play"'})

    # -- POST /api/alerts ------------------------------------------------------------------------------------
    def _refusal(self, request: web.Request, cap: int) -> web.Response | None:
        """What can be answered from the headers alone."""
        if not self._authorized(request):
            return self._unauthorized()
        if self.runs.stopping:
            return error(503, "synap-play serve is stopping; send the webhook again in a moment",
                         **{"Retry-After": str(RETRY_AFTER_SECONDS)})
        if request.content_length is not None and request.content_length > cap:
            return error(413, CAP_MESSAGE)
        return None

    async def expect_alerts(self, request: web.Request) -> web.Response | None:
        """A sender that asks first (Expect: 100-continue, as curl does for large bodies) is refused before it
        sends a body that would be refused anyway."""
        refusal = self._refusal(request, MAX_PAYLOAD_BYTES)
        if refusal is not None:
            self.metrics.webhooks.labels(str(refusal.status)).inc()
            return refusal
        return await _default_expect_handler(request) if _default_expect_handler else None

    async def receive_alerts(self, request: web.Request) -> web.Response:
        began = time.perf_counter()
        response = await self._receive(request)
        # What the handler took, for the sender and the tests: the 202 is meant to come within 100 ms.
        response.headers["Server-Timing"] = f"intake;dur={(time.perf_counter() - began) * 1000:.1f}"
        self.metrics.webhooks.labels(str(response.status)).inc()
        return response

    async def _receive(self, request: web.Request) -> web.Response:
        # A body a little over the cap is read (and dropped) so that the sender, which is sending it already, gets
        # its 413 rather than a reset connection; a huge one is refused at once.
        refusal = self._refusal(request, _DRAIN_LIMIT)
        if refusal is not None:
            return refusal
        received_at = datetime.now(UTC)
        body = await _read_capped(request)
        if body is None:
            return error(413, CAP_MESSAGE)
        try:
            # A body of megabytes takes tens of milliseconds to parse and group: off the event loop, which
            # answers others meanwhile. Deciding what is open stays on the loop, one webhook at a time.
            prepared = await asyncio.to_thread(
                lambda: self.intake.prepare(parse_payload(decode_payload(body), received_at=received_at)))
        except PayloadError as exc:
            return error(400, str(exc))
        if self.runs.stopping:  # the signal came while the body was read
            return self._refusal(request, _DRAIN_LIMIT)
        try:
            status, answer = self.intake.take(prepared, received_at)
        except OSError as exc:  # the incidents folder: full, or no longer writable
            return error(500, f"cannot write to {self.settings.incidents_dir}: {exc.strerror or exc}; nothing was "
                              f"queued for what failed (send the webhook again)")
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
        return web.json_response(answer, status=status, headers=headers)

    # -- GET /api/incidents ---------------------------------------------------------------------------------
    async def list_incidents(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        try:
            last = int(request.query.get("last", DEFAULT_LAST))
            if not 1 <= last <= MAX_LAST:
                raise ValueError
        except ValueError:
            return error(400, f"last must be a whole number from 1 to {MAX_LAST}")
        self.index.refresh()
        return web.json_response({
            "open": [i.summary() for i in self.index.open_incidents()],
            "recent": [i.summary() for i in self.index.newest(last)],
            "unreadable": [{"id": k, "error": v} for k, v in sorted(self.index.unreadable.items())],
        })

    def _find(self, request: web.Request) -> Incident | tuple[int, str]:
        """The incident the path names, or the status and the reason it cannot be had (the API's and the pages')."""
        incident_id = request.match_info["incident_id"]
        if not INCIDENT_ID.fullmatch(incident_id):
            return 404, f"{incident_id[:80]!r} is not an incident id (YYYYMMDDTHHMMSSZ-<scenario>-<6 hex>)"
        self.index.refresh()
        incident = self.index.get(incident_id)
        if incident is None:
            return 404, f"no incident {incident_id} in {self.settings.incidents_dir}"
        return incident

    def _incident(self, request: web.Request) -> Incident | web.Response:
        found = self._find(request)
        return error(*found) if isinstance(found, tuple) else found

    async def show_incident(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        incident = self._incident(request)
        if isinstance(incident, web.Response):
            return incident
        record, notes = await asyncio.to_thread(record_and_notes, incident.folder)
        return web.json_response({
            **(record or {"id": incident.id, "scenario": incident.scenario, "severity": incident.severity,
                          "status": incident.state}),
            "state": incident.state,
            "open": incident.takes_repeats(),
            "pending_approval": held_steps.pending(record, notes),
            "alert_states": incident.alert_states,
            "serve_notes": notes,
        }, dumps=_dumps)

    async def decide(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        if self.runs.stopping:
            return error(503, "synap-play serve is stopping; decide again in a moment",
                         **{"Retry-After": str(RETRY_AFTER_SECONDS)})
        incident = self._incident(request)
        if isinstance(incident, web.Response):
            return incident
        try:
            decision = StepDecision.parse(await request.read(), default_by=f"{self.settings.operator} (serve API)")
            status, answer = self.approvals.decide(incident, request.match_info["step"], decision)
        except Refused as refused:
            return error(refused.status, str(refused))
        return web.json_response(answer, status=status, dumps=_dumps)

    # -- health and metrics -----------------------------------------------------------------------------------
    async def health(self, request: web.Request) -> web.Response:
        body = {"status": "stopping" if self.runs.stopping else "ok", "runs_in_flight": self.runs.in_flight,
                "queued": self.runs.waiting, "max_parallel": self.settings.max_parallel,
                "queue_size": self.settings.queue_size}
        return web.json_response(body, status=503 if self.runs.stopping else 200)

    async def metrics_text(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": METRICS_CONTENT_TYPE})


async def _read_capped(request: web.Request) -> bytes | None:
    """The body, or None when it is over MAX_PAYLOAD_BYTES; nothing past the cap is kept in memory."""
    kept, total = [], 0
    async for chunk in request.content.iter_chunked(_CHUNK):
        total += len(chunk)
        if total <= MAX_PAYLOAD_BYTES:
            kept.append(chunk)
        elif total > _DRAIN_LIMIT:
            break
    return b"".join(kept) if total <= MAX_PAYLOAD_BYTES else None


def record_and_notes(folder) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    return read_record(folder), read_notes(folder)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)
