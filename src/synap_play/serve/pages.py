"""The incident pages: server-rendered HTML an on-call engineer (or whoever joins later) reads and acts from.

    GET  /incidents             every incident, open first, with the escalation level reached by now
    GET  /incidents/<id>        one incident: the seven phases, findings, actions with their plans, verification,
                                the steps waiting for approval (approve / decline buttons), the post-mortem draft
    POST /incidents/<id>/approvals/<step>   the page's form: the same decision as the API's, re-planned alike
    GET, POST /login            with a token: the token once, kept in a cookie (HttpOnly, SameSite=Strict)

No JavaScript: a page whose run is in flight reloads itself (meta refresh). Everything shown is escaped (Jinja's
autoescape); the record's secrets were masked when it was written.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from synap_play import collection, held_steps

collection.load()

from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import escalation, parse_iso

from synap_play.serve.approvals import ApprovalDesk, Refused, StepDecision
from synap_play.serve.incidents import IncidentIndex

TOKEN_COOKIE = "synap_play_token"
REFRESH_SECONDS = 5
LIST_SIZE = 100
PHASES = ("Acknowledge", "Assess", "Communicate", "Mitigate", "Investigate", "Resolve", "Document")

_templates = jinja2.Environment(loader=jinja2.PackageLoader("synap_play.serve", "templates"),
                                autoescape=True, undefined=jinja2.ChainableUndefined)


class Pages:
    def __init__(self, index: IncidentIndex, approvals: ApprovalDesk, incidents_dir: Path, operator: str,
                 authorized, token: str | None, load, read):
        self.index, self.approvals = index, approvals
        self.incidents_dir, self.operator = incidents_dir, operator
        self.authorized, self.token = authorized, token
        self.load = load  # (request) -> Incident | (status, reason): the API's own look-up by id
        self.read = read  # (folder) -> (record or None, serve's notes)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.home)
        app.router.add_get("/incidents", self.incident_list)
        app.router.add_get("/incidents/{incident_id}", self.incident_page)
        app.router.add_post("/incidents/{incident_id}/approvals/{step}", self.decide)
        app.router.add_get("/login", self.login_form)
        app.router.add_post("/login", self.login)

    async def home(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/incidents")

    def _sign_in_first(self, request: web.Request) -> web.Response:
        raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")

    def _incident(self, request: web.Request):
        """The incident the path names, or the page saying why there is none (after the token, as every page)."""
        if not self.authorized(request):
            self._sign_in_first(request)
        found = self.load(request)
        if isinstance(found, tuple):
            status, reason = found
            return _page("base.html", status=status, message=reason)
        return found

    # -- the list --------------------------------------------------------------------------------------------
    async def incident_list(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return self._sign_in_first(request)
        self.index.refresh()
        rows = []
        for incident in self.index.newest(LIST_SIZE):  # from the index: no record read per row and refresh
            row = incident.summary()
            row["escalation"] = _escalation_now(row, row["open"]) if row["open"] else None
            rows.append(row)
        rows.sort(key=lambda row: not row["open"])  # open first; newest first within each
        return _page("incidents.html", rows=rows, folder=self.incidents_dir, refresh=REFRESH_SECONDS)

    # -- one incident ----------------------------------------------------------------------------------------
    async def incident_page(self, request: web.Request) -> web.Response:
        incident = self._incident(request)
        if isinstance(incident, web.Response):
            return incident
        record, notes = await asyncio.to_thread(self.read, incident.folder)
        running = incident.state != "ended"
        said = request.query.get("said")
        if record is None:
            return _page("base.html", refresh=REFRESH_SECONDS, message=" ".join(filter(None, [
                said, f"Incident {incident.id} is {incident.state}; its record is not written yet."])))
        open_now = incident.takes_repeats() or running
        postmortem = None
        if record.get("ended_at"):
            from synap_play.postmortem import render_postmortem

            postmortem = await asyncio.to_thread(render_postmortem, record)
        phases = {phase.get("name"): phase for phase in record.get("phases") or [] if isinstance(phase, dict)}
        return _page("incident.html", r=record, notes=notes, running=running, open=open_now,
                     refresh=REFRESH_SECONDS if running else None, pending=held_steps.pending(record, notes),
                     escalation=_escalation_now(record, open_now), operator=self.operator,
                     phases=[phases.get(name, {"name": name}) for name in PHASES],
                     first_look=(record.get("first_look") or {}).get("findings"), postmortem=postmortem,
                     message=said)

    async def decide(self, request: web.Request) -> web.Response:
        incident = self._incident(request)
        if isinstance(incident, web.Response):
            return incident
        form = await request.post()
        try:
            decision = StepDecision.checked(form.get("decision"), form.get("by"))
            _status, answer = self.approvals.decide(incident, request.match_info["step"], decision)
        except Refused as refused:
            return _page("base.html", status=refused.status, message=str(refused))
        said = (f"Approved by {decision.by}: approval run {answer['run']} queued; each step is planned again before "
                f"it runs." if decision.decision == "approve" else f"Declined by {decision.by}.")
        target = answer.get("run") or incident.id
        raise web.HTTPSeeOther(f"/incidents/{target}?said={quote(said)}")

    # -- the token -------------------------------------------------------------------------------------------
    async def login_form(self, request: web.Request) -> web.Response:
        if self.token is None:  # nothing to sign in to
            raise web.HTTPSeeOther(_local(request.query.get("next")))
        return _page("login.html", next=_local(request.query.get("next")))

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        given = str(form.get("token") or "")
        if self.token is None or not self.authorized_token(given):
            return _page("login.html", status=401, next=_local(form.get("next")), message="Wrong token.")
        response = web.HTTPSeeOther(_local(form.get("next")))
        response.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="Strict", secure=request.secure, path="/")
        raise response

    def authorized_token(self, given: str) -> bool:
        import hmac

        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())


def _page(template: str, status: int = 200, **context: Any) -> web.Response:
    html = _templates.get_template(template).render(**context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "no-store", "Content-Security-Policy": "default-src 'self'; "
                                 "style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"})


def _local(target: Any) -> str:
    """Where to go after signing in: a path of this server only."""
    target = str(target or "/incidents")
    return target if target.startswith("/") and not target.startswith("//") else "/incidents"


def _escalation_now(record: dict[str, Any], open_now: bool) -> dict[str, Any]:
    """An open incident's level reached by now (from its record or its summary: both have started_at); a closed
    one's, the level its record ended at."""
    if open_now and record.get("started_at"):
        try:
            return escalation(parse_iso(str(record["started_at"])))
        except (ValueError, TypeError):
            pass
    return record.get("escalation") or {}
