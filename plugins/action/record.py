# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Record a phase, a note or the verification in the incident record.

Runs on the controller only: no module is shipped to a host, so marking a phase costs almost nothing.
synap-play reads the result from the event stream.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

PHASES = ("acknowledge", "assess", "communicate", "mitigate", "investigate", "resolve", "document")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        unknown = set(args) - {"phase", "note", "verify", "data"}
        if unknown:
            raise AnsibleActionFail(f"unsupported option(s) {', '.join(sorted(unknown))}; use phase, note, verify, data")
        phase = args.get("phase")
        if phase is not None and phase not in PHASES:
            raise AnsibleActionFail(f"phase {phase!r} is not one of {', '.join(PHASES)}")

        result.update(changed=False, record={"phase": phase, "note": args.get("note"), "data": args.get("data") or {}})
        parts = [p for p in (phase, args.get("note")) if p]

        checks = args.get("verify")
        if checks is not None:
            verification = self._verification(checks)
            result["record"]["verification"] = verification
            failed = [c["name"] for c in verification["checks"] if not c["ok"]]
            parts.append("resolved: all checks pass" if verification["resolved"] else "not resolved: " + "; ".join(failed))
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
            entry = dict(check)
            entry["ok"] = boolean(check["ok"], strict=False)
            normalised.append(entry)
        return {"resolved": all(c["ok"] for c in normalised), "checks": normalised}
