# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registration: a ``POST /fn/register`` body checked and turned into function records; which functions an event triggers.

Two forms arrive. The SDK's, what ``serve()`` posts when its endpoint gets a PUT::

    {"url", "v", "deployType", "sdk", "framework", "appName", "capabilities", "functions": [
        {"id": "synap-global-validator", "name", "triggers": [{"event", "expression"?} | {"cron"}],
         "steps": {"step": {"id": "step", "name": "step",
                            "runtime": {"type": "http", "url": ".../api/inngest?fnId=synap-global-validator&stepId=step"},
                            "retries": {"attempts": 2}?}},
         "concurrency"?, "throttle"?, "debounce"?, ...}]}

Its ids are already app-prefixed and are the slugs as they stand; its functions run through the SDK execution
protocol (``execution``). The simple form the lab's Python worker sends is ``{"url", "appName", "functions": [{"id",
"name", "triggers", "retries"}]}``: the slug is ``<appName>-<id>`` and a run is one POST to ``url``.
"""

from __future__ import annotations

import fnmatch
import uuid

from common import RequestError, now
from schedule import Cron

DEFAULT_RETRIES = 3  # Inngest's default: three retries after the first attempt
MAX_RETRIES = 20  # and its most


def refused(message: str) -> RequestError:
    # The SDK reads ``status`` and ``error`` from the body (not the HTTP status) to report a failed sync.
    return RequestError(400, {"status": 400, "error": message})


def checked(payload: object) -> tuple[str, str, list[dict]]:
    """``(app name, app url, function specs)`` of a register body, or a 400."""
    if not isinstance(payload, dict):
        raise refused("Invalid request: body must be a JSON object")
    url = payload.get("url")
    app_name = payload.get("appName") or payload.get("app_name")
    specs = payload.get("functions")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise refused("Invalid request: url must be the app's http(s) endpoint")
    if not isinstance(app_name, str) or not app_name:
        raise refused("Invalid request: appName is required")
    if not isinstance(specs, list):
        raise refused("Invalid request: functions must be a list")
    for spec in specs:
        if not isinstance(spec, dict) or not isinstance(spec.get("id"), str) or not spec["id"]:
            raise refused("At least one function is invalid: every function needs a string id")
        problem = _problem(spec)
        if problem:
            raise refused(f"At least one function is invalid: {spec['id']}: {problem}")
    return app_name, url, specs


def is_sdk(spec: dict) -> bool:
    return isinstance(spec.get("steps"), dict)


def _problem(spec: dict) -> str | None:
    triggers = spec.get("triggers")
    if not isinstance(triggers, list) or not triggers:
        return "At least one trigger is required"
    for trigger in triggers:
        if not isinstance(trigger, dict) or ("event" in trigger) == ("cron" in trigger):
            return "A trigger must supply an event name or a cron schedule"
        if "event" in trigger and (not isinstance(trigger["event"], str) or not trigger["event"]):
            return "An event trigger must specify an event name"
        if "cron" in trigger:
            try:
                Cron(str(trigger["cron"]))
            except ValueError as exc:
                return str(exc)
    if is_sdk(spec):
        step = spec["steps"].get("step")
        runtime = step.get("runtime") if isinstance(step, dict) else None
        if not isinstance(runtime, dict) or runtime.get("type") != "http" \
                or not str(runtime.get("url", "")).startswith(("http://", "https://")):
            return "steps.step.runtime must be {type: http, url}"
    retries = _retries(spec)
    if retries is not None and (not isinstance(retries, int) or isinstance(retries, bool)
                                or not 0 <= retries <= MAX_RETRIES):
        return f"retries must be a whole number from 0 to {MAX_RETRIES}"
    return None


def _retries(spec: dict):
    """The retries a spec asks for, None for the default: ``steps.step.retries.attempts`` or ``retries``."""
    if not is_sdk(spec):
        return spec.get("retries")
    retries = spec["steps"]["step"].get("retries")
    return retries.get("attempts") if isinstance(retries, dict) else None


def record(app_name: str, app_url: str, spec: dict, old: dict | None) -> dict:
    """The stand-in's record of one checked function spec; ``old`` is its record from the previous registration."""
    sdk = is_sdk(spec)
    retries = _retries(spec)
    triggers = [t for t in spec["triggers"] if isinstance(t, dict)]
    return {
        # Internal ids stay stable across re-registration, as the real server keeps them.
        "internal_id": old["internal_id"] if old else str(uuid.uuid4()),
        "created_at": old["created_at"] if old else now(),
        "id": spec["id"],
        "slug": spec["id"] if sdk else f"{app_name}-{spec['id']}",
        "name": spec.get("name") or spec["id"],
        "triggers": triggers,
        "retries": int(DEFAULT_RETRIES if retries is None else retries),
        "config": {k: v for k, v in spec.items() if k not in ("id", "name", "triggers")},
        "protocol": "sdk" if sdk else "simple",
        "url": spec["steps"]["step"]["runtime"]["url"] if sdk else app_url,
        "crons": [Cron(str(t["cron"])) for t in triggers if "cron" in t],
    }


def triggered_by(fn: dict, event_name: str) -> bool:
    """Does an event of this name start a run of ``fn``? Names match exactly or as globs (``*.*.requested``).

    A trigger's ``expression`` is not evaluated: every event of a matching name starts a run.
    """
    return any("event" in t and fnmatch.fnmatchcase(event_name, t["event"]) for t in fn["triggers"])
