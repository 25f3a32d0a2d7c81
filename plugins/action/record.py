# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Record a phase, a note or the verification in the incident record.

Runs on the controller only: no module is shipped to a host, so marking a phase costs almost nothing.
synap-play reads the result from the event stream.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible_collections.synap.ops.plugins.plugin_utils.action_args import refuse_unknown

# ok is only believed when known: a check of a source that could not be read is unknown, never passing.
CHECK_KEYS = {"name", "ok", "known", "observed", "threshold", "unknown_because"}
PHASES = ("acknowledge", "assess", "communicate", "mitigate", "investigate", "resolve", "document")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        refuse_unknown(args, ("phase", "note", "verify", "data"))
        phase = args.get("phase")
        if phase is not None and phase not in PHASES:
            raise AnsibleActionFail(f"phase {phase!r} is not one of {', '.join(PHASES)}")

        result.update(changed=False, record={"phase": phase, "note": args.get("note"), "data": args.get("data") or {}})
        parts = [p for p in (phase, args.get("note")) if p]

        checks = args.get("verify")
        if checks is not None:
            verification = self._verification(checks)
            result["record"]["verification"] = verification
            parts.append(_verdict_line(verification))
        result["msg"] = ": ".join(parts) if parts else "recorded"
        return result

    @staticmethod
    def _verification(checks):
        if not isinstance(checks, list) or not checks:
            raise AnsibleActionFail("verify takes a non-empty list of checks, each with name and ok")
        normalised = []
        for check in checks:
            if not isinstance(check, dict) or "name" not in check or "ok" not in check:
                raise AnsibleActionFail(f"a verification check needs name and ok, got {check!r}")
            unknown = set(check) - CHECK_KEYS
            if unknown:
                raise AnsibleActionFail(f"check {check['name']!r}: unsupported key(s) {', '.join(sorted(unknown))}; "
                                        f"use {', '.join(sorted(CHECK_KEYS))}")
            entry = dict(check)
            # A check whose source could not be read is unknown, whatever its ok says: unknown never passes.
            known = boolean(check.get("known", True), strict=False)
            passed = known and boolean(check["ok"], strict=False)
            entry.update(known=known, ok=passed, state="ok" if passed else "failed" if known else "unknown")
            if known:
                entry.pop("unknown_because", None)
            normalised.append(entry)
        return {"resolved": all(c["state"] == "ok" for c in normalised), "state": verification_state(normalised),
                "checks": normalised}


def verification_state(checks):
    """resolved (every check ok), unresolved (a check failed), or unverified (none failed, one or more unknown)."""
    states = {c["state"] for c in checks}
    if "failed" in states:
        return "unresolved"
    return "unverified" if "unknown" in states else "resolved"


def _verdict_line(verification):
    failed = [c["name"] for c in verification["checks"] if c["state"] == "failed"]
    unknown = [f"{c['name']} ({c.get('unknown_because') or 'not measured'})"
               for c in verification["checks"] if c["state"] == "unknown"]
    if verification["state"] == "resolved":
        return "resolved: all checks pass"
    parts = (["failing: " + "; ".join(failed)] if failed else []) + (["unknown: " + "; ".join(unknown)] if unknown else [])
    return f"{verification['state']}: " + "; ".join(parts)
