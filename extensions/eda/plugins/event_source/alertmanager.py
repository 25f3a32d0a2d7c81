# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An ansible-rulebook event source: Alertmanager webhooks in, one event per scenario to run out."""

from __future__ import annotations

DOCUMENTATION = r"""
---
short_description: Receive Alertmanager webhooks and turn them into synap.ops scenario events.
description:
  - Listens for Alertmanager webhook posts (payload version 4) on any path.
  - Validates the payload and maps its alerts to scenarios with the synap-play alert mapping
    (playbooks/alerts.yml and the scenario catalog), the same way C(synap-play alert) does.
  - Puts one event per scenario to run (firing alerts grouped by scenario, at the most severe of their
    severities, started at the earliest startsAt), and one event per alert that runs nothing (resolved,
    unknown, or mapped to a scenario that is not installed).
  - Answers 202 with what it queued, 400 with the reason for a malformed payload, 401 without the token.
  - Each event has C(synap.action) (C(run) or C(ignore)), and for runs C(synap.scenario), C(synap.severity),
    C(synap.playbook), C(synap.started_at), C(synap.incident_id), C(synap.alerts).
options:
  host:
    description: The address to listen on.
    type: str
    default: "0.0.0.0"
  port:
    description: The TCP port to listen on.
    type: int
    required: true
  token:
    description: If set, requests must carry C(Authorization: Bearer <token>).
    type: str
  catalog:
    description: The scenario catalog; default playbooks/scenarios.yml of the synap-play project.
    type: str
  alert_map:
    description: The alert mapping; default playbooks/alerts.yml of the synap-play project.
    type: str
"""

EXAMPLES = r"""
- synap.ops.alertmanager:
    host: 0.0.0.0
    port: 5001
    token: "{{ alertmanager_webhook_token }}"
"""

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)


def load_intake(args: dict[str, Any]):
    """The catalog and mapping, read once at start: a broken mapping stops the source with its reason."""
    from synap_play.alerts import load_mapping
    from synap_play.catalog import load_catalog
    from synap_play.project import project_root

    catalog_path = Path(args["catalog"]) if args.get("catalog") else project_root() / "playbooks" / "scenarios.yml"
    catalog = load_catalog(catalog_path)
    if args.get("alert_map"):
        mapping_path = Path(args["alert_map"])
    else:
        default = project_root() / "playbooks" / "alerts.yml"
        mapping_path = default if default.is_file() else None
    return catalog, load_mapping(mapping_path, catalog)


def events_for(document: Any, catalog, mapping) -> list[dict[str, Any]]:
    """The events one webhook body produces; PayloadError if it is malformed."""
    from synap_play.alerts import alerts_from_document, plan_intake
    from synap_play.incident import iso, new_incident_id

    plan = plan_intake(alerts_from_document(document), mapping, catalog)
    events = []
    for run in plan.runs:
        events.append({"synap": {
            "action": "run",
            "scenario": run.scenario.name,
            "severity": run.severity,
            "playbook": str(run.scenario.playbook),
            "started_at": iso(run.started_at) or "",
            "incident_id": new_incident_id(run.scenario.name),
            "alerts": [{"name": a.name, "fingerprint": a.fingerprint, "starts_at": iso(a.starts_at),
                        "severity": a.severity_label} for a in run.alerts],
        }})
    ignored = [(a, "resolved") for a in plan.resolved] + [(a, "unknown alert") for a in plan.unknown]
    ignored += [(a, f"scenario {scenario} not installed") for a, scenario in plan.unavailable]
    for alert, reason in ignored:
        events.append({"synap": {"action": "ignore", "reason": reason, "alert": alert.name,
                                 "fingerprint": alert.fingerprint}})
    return events


def make_app(queue: asyncio.Queue, args: dict[str, Any]) -> web.Application:
    from synap_play.alerts import PayloadError

    catalog, mapping = load_intake(args)
    token = args.get("token")

    async def receive(request: web.Request) -> web.Response:
        if token and request.headers.get("Authorization") != f"Bearer {token}":
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        try:
            document = json.loads(await request.text())
            events = events_for(document, catalog, mapping)
        except json.JSONDecodeError as exc:
            return web.json_response({"error": f"payload is not JSON: {exc.msg}"}, status=400)
        except PayloadError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        for event in events:
            event["meta"] = {"endpoint": request.path}
            await queue.put(event)
        return web.json_response({"queued": [e["synap"] for e in events]}, status=202)

    app = web.Application()
    app.router.add_post("/{endpoint:.*}", receive)
    return app


async def main(queue: asyncio.Queue, args: dict[str, Any]) -> None:
    """ansible-rulebook's entry point: serve until cancelled."""
    runner = web.AppRunner(make_app(queue, args))
    await runner.setup()
    site = web.TCPSite(runner, args.get("host", "0.0.0.0"), int(args["port"]))
    await site.start()
    logger.info("alertmanager source listening on %s:%s", args.get("host", "0.0.0.0"), args["port"])
    try:
        await asyncio.Future()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    # Manual try-out: python alertmanager.py, then post a payload to port 5001; events are printed.
    class _PrintQueue(asyncio.Queue):
        async def put(self, item):
            print(json.dumps(item))

    asyncio.run(main(_PrintQueue(), {"port": 5001}))
