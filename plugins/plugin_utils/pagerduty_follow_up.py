# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The severity gate's PagerDuty follow-ups to the notify role's trigger.

The notify role triggers at Acknowledge and resolves at the end; the gate sends what only it can time: the findings
before the first mitigation the run weighs (a second trigger, same dedup_key), and the acknowledge just before the
first one that does something starts. Each once for the run, whichever host comes first: every host's gate runs in a
process of its own, so what was sent is kept, under a lock, beside the record (PAGERDUTY_STATE_FILE). A PagerDuty
that fails is in the task's result, never a failed mitigation.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ansible_collections.synap.ops.plugins.module_utils.pagerduty import deliver
from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import iso, load_record, utcnow
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import PAGERDUTY_STATE_FILE, RunVar

# The findings a diagnosis made; the Resolve step's measurements are not the diagnosis.
DIAGNOSIS_PHASES = ("Assess", "Investigate")


class PagerDutyFollowUp:
    """One gate task's follow-ups. The gate calls findings_once() before each module it runs, plan_seen() with each
    plan, acknowledge_before_run() before a module runs for real, and report() as it finishes."""

    def __init__(self, task_vars: Mapping[str, Any], check_mode: bool, has_work: Callable[[dict[str, Any]], bool]):
        """``has_work(plan)``: the gate's own reading of a plan, so that both agree on "nothing to do"."""
        self._task_vars = task_vars
        self._check_mode = check_mode
        self._has_work = has_work
        self._sent: list[dict[str, Any]] = []  # the PagerDuty events this task sent, for its result
        self._plan: dict[str, Any] | None = None  # the module's last plan in this task

    # -- the gate's hooks ---------------------------------------------------------------------------------------
    def findings_once(self) -> None:
        """The findings trigger, when the run has not sent it yet. Check mode sends it too, as it does the trigger."""
        self._safely("trigger", self._findings)

    def plan_seen(self, planned: dict[str, Any]) -> None:
        """The module's plan (its check-mode result), for the acknowledge to look at."""
        self._plan = planned

    def acknowledge_before_run(self, plan: Callable[[], dict[str, Any]]) -> None:
        """The acknowledge, just before a mitigation runs for real, when its plan has work. ``plan`` plans it (check
        mode); called only while the acknowledge is due and no plan was seen (a mitigation the policy runs without
        asking), so that one with nothing to do acknowledges nothing."""
        self._safely("acknowledge", self._acknowledge, plan)

    def report(self, result: dict[str, Any], ran: bool) -> None:
        """Catch up on what is still due (a replayed plan runs no module; a mitigation whose plan showed no work but
        that ``ran`` is acknowledged late rather than never), then put what was sent into the result, and so into the
        incident record: ``pagerduty`` and a line each in ``msg``."""
        self._safely("trigger", self._findings)
        self._safely("acknowledge", self._acknowledge_late, ran)
        if self._sent:
            result["pagerduty"] = list(self._sent)
            result["msg"] = result["msg"] + " (" + "; ".join(
                f"PagerDuty {'trigger with the findings' if sent['event_action'] == 'trigger' else sent['event_action']}"
                f" to {sent['channel']}: " + ("delivered" if sent["delivered"] else f"not delivered: {sent['error']}")
                for sent in self._sent) + ")"

    # -- the steps ------------------------------------------------------------------------------------------------
    def _safely(self, action: str, step: Callable[..., None], *args: Any) -> None:
        """Take a step; whatever goes wrong in it (a channel that does not resolve, a folder that cannot be written)
        is in the task's result, never a failed mitigation."""
        try:
            step(*args)
        except Exception as exc:
            error = f"not sent: {exc.__class__.__name__}: {exc}"
            if not any((sent["event_action"], sent["error"]) == (action, error) for sent in self._sent):
                self._sent.append({"channel": "all", "type": "pagerduty", "event_action": action,
                                   "delivered": False, "at": iso(utcnow()), "error": error})

    def _findings(self) -> None:
        """A second trigger with the notify role's payload and dedup_key, its custom_details carrying the findings
        recorded so far: PagerDuty adds it to the open alert's log."""
        incident = _incident(self._task_vars)
        if incident is None:
            return

        def send():
            payload = dict(incident["payload"] or {})
            payload["custom_details"] = dict(payload.get("custom_details") or {},
                                             findings=_recorded_findings(self._task_vars))
            self._send(incident, "trigger", payload)

        self._once(incident, "findings", send)

    def _acknowledge(self, plan: Callable[[], dict[str, Any]]) -> None:
        incident = _incident(self._task_vars)
        if incident is None or self._check_mode or not self._once(incident, "acknowledge"):
            return
        planned = self._plan if self._plan is not None else plan()
        if not planned.get("failed") and self._has_work(planned):
            self._once(incident, "acknowledge", lambda: self._send(incident, "acknowledge"))

    def _acknowledge_late(self, ran: bool) -> None:
        """A mitigation whose plan showed no work (or could not be made) but that did something."""
        incident = _incident(self._task_vars)
        if incident is not None and ran and not self._check_mode:
            self._once(incident, "acknowledge", lambda: self._send(incident, "acknowledge"))

    def _once(self, incident: dict[str, Any], what: str, send: Callable[[], None] | None = None) -> bool:
        """Whether ``what`` is still due in this run; given ``send``, sends it when due and tells whether it did. The
        lock held meanwhile makes every other host's gate wait until it is out: no mitigation starts before it."""
        folder = (self._task_vars.get(RunVar.RECORD.value) or {}).get("folder")
        if not folder:
            return False
        try:
            handle = os.fdopen(os.open(os.path.join(str(folder), PAGERDUTY_STATE_FILE), os.O_RDWR | os.O_CREAT, 0o600),
                               "r+", encoding="utf-8")
        except OSError as exc:
            raise OSError(f"the record's folder cannot be written ({exc})") from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released as the file closes
            try:
                state = json.loads(handle.read() or "{}")
            except ValueError:
                state = {}
            # An earlier run of the same incident id left its own.
            sent = list(state.get("sent") or []) if state.get("run") == incident["run"] else []
            if what in sent or send is None:
                return what not in sent
            send()
            handle.seek(0)
            handle.truncate()
            json.dump({"run": incident["run"], "sent": [*sent, what]}, handle)
            return True

    def _send(self, incident: dict[str, Any], action: str, payload: dict[str, Any] | None = None) -> None:
        """Send one event to every PagerDuty channel, with the notify role's delivery settings; note what came of it."""
        delivery = incident.get("delivery") or {}
        try:
            outcomes = deliver(_channels(self._task_vars), action, str(incident["dedup_key"]), payload,
                               timeout=float(delivery.get("timeout", 10)),
                               max_attempts=int(delivery.get("max_attempts", 3)),
                               retry_delay=float(delivery.get("retry_delay", 1)),
                               max_retry_delay=float(delivery.get("max_retry_delay", 30)))
        except Exception as exc:  # PagerDuty never fails a mitigation
            outcomes = [{"channel": "all", "type": "pagerduty", "event_action": action, "delivered": False,
                         "error": f"not sent: {exc.__class__.__name__}: {exc}"}]
        at = iso(utcnow())
        self._sent.extend(dict(outcome, at=at) for outcome in outcomes)


def _channels(task_vars: Mapping[str, Any]) -> list[Any]:
    """The inventory's PagerDuty channels, as the notify role reads them, as plain values."""
    channels = task_vars.get("synap_notify_channels") or []
    return [_plain(channel) for channel in channels if isinstance(channel, Mapping) and channel.get("type") == "pagerduty"]


def _incident(task_vars: Mapping[str, Any]) -> Any:
    """What the notify role kept of its trigger at Acknowledge (notify_pagerduty_incident), when there is a
    PagerDuty channel to follow it up on; else None: a run that never triggered sends no follow-up."""
    incident = task_vars.get("notify_pagerduty_incident")
    if not isinstance(incident, Mapping) or not incident.get("dedup_key") or not incident.get("run"):
        return None
    return _plain(incident) if _channels(task_vars) else None


def _recorded_findings(task_vars: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The diagnosis's findings as the incident record has them so far (secrets masked), without their details."""
    folder = (task_vars.get(RunVar.RECORD.value) or {}).get("folder")
    try:
        record = load_record(Path(str(folder))) if folder else {}
    except (OSError, ValueError):
        return []
    return [{key: finding.get(key) for key in ("host", "look_up", "source", "summary")}
            for finding in record.get("findings") or []
            if isinstance(finding, dict) and finding.get("phase") in DIAGNOSIS_PHASES]


def _plain(value: Any) -> Any:
    """A variable's value as plain dicts, lists and strings, every template in it resolved."""
    if isinstance(value, Mapping):
        return {str(key): _plain(value[key]) for key in value}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, str):
        return str(value)
    return value
