# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An ansible-rulebook event source: Alertmanager webhooks in, one event per scenario to run out."""

from __future__ import annotations

DOCUMENTATION = r"""
---
short_description: Receive Alertmanager webhooks and turn them into synap.ops scenario events.
description:
  - Listens for Alertmanager webhook posts (payload version 4) on any path.
  - Validates the payload and maps its alerts to scenarios with the collection's alert mapping
    (playbooks/alerts.yml and the scenario catalog playbooks/scenarios.yml of this collection), with the same
    code as C(synap-play alert) (the collection's plugin_utils/alerts.py).
  - Puts one event per scenario to run (firing alerts grouped by scenario, at the most severe of their
    severities, started at the earliest startsAt), and one event per alert that runs nothing (resolved,
    unknown, or mapped to a scenario that is not installed).
  - Answers 202 with what it queued, 400 with the reason for a malformed payload (not UTF-8 JSON, not
    version 4, no alerts, ...), 401 without the token, 413 for a body over 10 MB.
  - Each event has C(synap.action) (C(run) or C(ignore)), and for runs C(synap.scenario), C(synap.severity),
    C(synap.playbook), C(synap.started_at), C(synap.incident_id), C(synap.alerts) and C(synap.incidents_dir)
    (where the run's record goes, an absolute path).
  - When it starts, it makes the playbook runs ansible-rulebook starts (ansible-runner, in a temporary project
    folder, with ansible-rulebook's environment) keep the incident record and the mitigator lock: they read the
    Ansible configuration ansible-rulebook itself read (C(ANSIBLE_CONFIG) is set to it when unset), with the
    collection's C(synap.ops.incident) callback enabled (added to C(ANSIBLE_CALLBACKS_ENABLED) when that
    configuration does not enable it).
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
    description: The scenario catalog; default playbooks/scenarios.yml of this collection.
    type: str
  alert_map:
    description: The alert mapping; default playbooks/alerts.yml of this collection.
    type: str
  incidents_dir:
    description:
      - Where the runs' incident records go. Default C($SYNAP_PLAY_INCIDENTS_DIR), else C(incidents) in the
        directory ansible-rulebook was started in. Never the job's own artifacts folder, which ansible-rulebook
        deletes when the run ends.
    type: str
"""

EXAMPLES = r"""
- synap.ops.alertmanager:
    host: 0.0.0.0
    port: 5001
    token: "{{ alertmanager_webhook_token }}"
"""

import asyncio
import importlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)

COLLECTION = "ansible_collections.synap.ops"
# This file's place in a collection: <root>/ansible_collections/synap/ops/extensions/eda/plugins/event_source/.
_DEPTH_BELOW_COLLECTION = 4


def _collections_paths() -> list[str]:
    """The collections path holding the copy of synap.ops this file belongs to (ansible-rulebook runs it by path,
    as `ansible-galaxy collection list` found it); when the file is not inside an ansible_collections tree, the
    collections paths Ansible is configured with."""
    paths = []
    for path in (Path(os.path.abspath(__file__)), Path(__file__).resolve()):
        if len(path.parents) < _DEPTH_BELOW_COLLECTION + 3:  # too shallow to be in a collections path
            continue
        collection = path.parents[_DEPTH_BELOW_COLLECTION]
        if [collection.parents[1].name, collection.parent.name, collection.name] == ["ansible_collections", "synap", "ops"]:
            paths.append(str(collection.parents[2]))
    if not paths:
        try:
            from ansible import constants
        except ImportError:
            return []
        paths = [os.path.expanduser(p) for p in constants.COLLECTIONS_PATHS]
    return list(dict.fromkeys(paths))


def collection_module(name: str):
    """A module of the collection (its name below it: plugins.plugin_utils.alerts).

    ansible-rulebook runs a source file with runpy.run_path and installs no collection loader, so
    ``ansible_collections`` is not importable there by default. Ansible's own loader is no help: its path hook
    claims every path that merely starts with its package's folder (site-packages/ansible_rulebook too), and
    ansible-rulebook's next runpy.run_path of a built-in filter then fails. So, unless a collection loader is
    already in place (synap-play, ansible-runner), this file's collections path goes first on sys.path and
    ``ansible_collections`` is imported as what it is on disk, a namespace package: the copy of the collection
    this source came with, which needs nothing of Ansible's loader (plain Python and PyYAML).
    """
    fullname = f"{COLLECTION}.{name}"
    try:
        from ansible.utils.collection_loader import AnsibleCollectionConfig
    except ImportError:  # no ansible-core
        finder = None
    else:
        finder = AnsibleCollectionConfig.collection_finder
    if finder is None:
        sys.path[:0] = [path for path in _collections_paths() if path not in sys.path]
    return importlib.import_module(fullname)


alerts = collection_module("plugins.plugin_utils.alerts")
catalogs = collection_module("plugins.plugin_utils.catalog")
incident_record = collection_module("plugins.plugin_utils.incident_record")
protocol = collection_module("plugins.plugin_utils.protocol")
INCIDENTS_DIR_ENV = protocol.INCIDENTS_DIR_ENV  # the incident callback's incidents_dir option
DEFAULT_INCIDENTS_DIR = protocol.DEFAULT_INCIDENTS_DIR
INCIDENT_CALLBACK = "synap.ops.incident"


def load_intake(args: dict[str, Any]):
    """The catalog and mapping, read once at start: a broken mapping stops the source with its reason."""
    catalog = catalogs.load_catalog(Path(args["catalog"]) if args.get("catalog") else None)
    if args.get("alert_map"):
        mapping_path = Path(args["alert_map"])
    else:
        mapping_path = alerts.DEFAULT_ALERT_MAP if alerts.DEFAULT_ALERT_MAP.is_file() else None
    return catalog, alerts.load_mapping(mapping_path, catalog)


def incidents_dir_for(args: dict[str, Any]) -> str:
    """Where the records of the runs go: the source's option, $SYNAP_PLAY_INCIDENTS_DIR, or ./incidents."""
    chosen = args.get("incidents_dir") or os.environ.get(INCIDENTS_DIR_ENV) or DEFAULT_INCIDENTS_DIR
    return str(Path(chosen).expanduser().resolve())


def prepare_runs() -> list[str]:
    """Make the playbook runs ansible-rulebook starts keep the record and the lock; what it set, for the log.

    run_playbook runs ansible-runner in a temporary project folder with a copy of this process's environment, so
    the ansible.cfg ansible-rulebook read (the checkout's, with its collections path) is not found there by
    itself, and a configuration that does not enable the incident callback would run the scenario unguarded."""
    try:
        from ansible import constants
    except ImportError:  # no ansible-core here: ansible-rulebook cannot run a playbook either
        return []
    changed = []
    if not os.environ.get("ANSIBLE_CONFIG") and constants.CONFIG_FILE:
        os.environ["ANSIBLE_CONFIG"] = str(Path(constants.CONFIG_FILE).resolve())
        changed.append(f"ANSIBLE_CONFIG={os.environ['ANSIBLE_CONFIG']}")
    enabled = list(constants.CALLBACKS_ENABLED or [])
    if INCIDENT_CALLBACK not in enabled:
        os.environ["ANSIBLE_CALLBACKS_ENABLED"] = ",".join([*enabled, INCIDENT_CALLBACK])
        changed.append(f"ANSIBLE_CALLBACKS_ENABLED={os.environ['ANSIBLE_CALLBACKS_ENABLED']}")
    return changed


def events_for(document: Any, catalog, mapping, incidents_dir: str = DEFAULT_INCIDENTS_DIR) -> list[dict[str, Any]]:
    """The events one webhook body produces; PayloadError if it is malformed."""
    plan = alerts.plan_intake(alerts.alerts_from_document(document), mapping, catalog)
    events = []
    for run in plan.runs:
        events.append({"synap": {
            "action": "run",
            "scenario": run.scenario.name,
            "title": run.scenario.title,
            "follow_ups": list(run.scenario.resolution),
            "severity": run.severity,
            "playbook": str(run.scenario.playbook),
            "started_at": alerts.iso(run.started_at) or "",
            "incident_id": incident_record.new_incident_id(run.scenario.name),
            "alerts": alerts.alert_vars(run.alerts),
            "incidents_dir": incidents_dir,
        }})
    ignored = [(a, "resolved") for a in plan.resolved] + [(a, "unknown alert") for a in plan.unknown]
    ignored += [(a, f"scenario {scenario} not installed") for a, scenario in plan.unavailable]
    for alert, reason in ignored:
        events.append({"synap": {"action": "ignore", "reason": reason, "alert": alert.name,
                                 "fingerprint": alert.fingerprint}})
    return events


def make_app(queue: asyncio.Queue, args: dict[str, Any]) -> web.Application:
    catalog, mapping = load_intake(args)
    token = args.get("token")
    incidents_dir = incidents_dir_for(args)

    async def receive(request: web.Request) -> web.Response:
        if token and request.headers.get("Authorization") != f"Bearer {token}":
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        try:
            document = json.loads(alerts.decode_payload(await request.read()))
            events = events_for(document, catalog, mapping, incidents_dir)
        except web.HTTPRequestEntityTooLarge:  # aiohttp's client_max_size: the body was not read past the cap
            return web.json_response({"error": f"payload is over the cap of {alerts.MAX_PAYLOAD_BYTES // 2**20} MB; "
                                               f"send the alerts in smaller groups (Alertmanager's group_by / "
                                               f"max_alerts)"}, status=413)
        except json.JSONDecodeError as exc:
            return web.json_response({"error": f"payload is not JSON: {exc.msg}"}, status=400)
        except RecursionError:
            return web.json_response({"error": "payload is nested too deeply to be an Alertmanager webhook body"},
                                     status=400)
        except alerts.PayloadError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        for event in events:
            event["meta"] = {"endpoint": request.path}
            await queue.put(event)
        return web.json_response({"queued": [e["synap"] for e in events]}, status=202)

    # aiohttp refuses a larger body itself (413) before it is read into memory.
    app = web.Application(client_max_size=alerts.MAX_PAYLOAD_BYTES)
    app.router.add_post("/{endpoint:.*}", receive)
    return app


async def main(queue: asyncio.Queue, args: dict[str, Any]) -> None:
    """ansible-rulebook's entry point: serve until cancelled."""
    for setting in prepare_runs():
        logger.info("alertmanager source: the scenario runs get %s", setting)
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
