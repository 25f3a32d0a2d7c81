# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The severity gate: the one place that decides whether a mitigation runs.

Every mitigation task in every playbook goes through this action and declares its class. The module
behind it is first run in check mode whenever the decision is not "run": the operator (or the record)
sees the exact plan — the pids, runs or services — before anything happens.
"""

from __future__ import annotations

import json
import os
import time
import uuid

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible_collections.synap.ops.plugins.plugin_utils.inner_module import with_module_defaults
from ansible_collections.synap.ops.plugins.plugin_utils.replay import REPLAY_VAR

CLASSES = ("diagnose", "safe", "disruptive", "destructive")
OPTIONS = {"class", "module", "args", "why"}
SECRET_ARGS = {"dsn", "login_password", "signing_key", "event_key", "token", "password"}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = dict(self._task.args)
        unknown = set(args) - OPTIONS
        if unknown:
            raise AnsibleActionFail(f"unsupported option(s) {', '.join(sorted(unknown))}; use {', '.join(sorted(OPTIONS))}")
        action_class = args.get("class")
        if action_class not in CLASSES:
            raise AnsibleActionFail(f"class must be one of {', '.join(CLASSES)}, got {action_class!r}")
        module_name = args.get("module")
        if not module_name:
            raise AnsibleActionFail("module is required: the module that carries out the mitigation")
        module_args = dict(args.get("args") or {})
        why = args.get("why") or ""

        severity = task_vars.get("incident_severity", "P2")
        policy = task_vars.get("incident_severity_policy")
        if not isinstance(policy, dict) or severity not in policy:
            raise AnsibleActionFail(
                f"no severity policy for {severity}: use the synap.ops.incident role in this play "
                "(it defines incident_severity_policy)"
            )
        rule = policy[severity] or {}
        approve_all = boolean(task_vars.get("incident_approve", False), strict=False)

        if action_class == "diagnose" or action_class in (rule.get("run") or []):
            decision, reason = "run", f"{severity} policy runs {action_class} actions"
        elif approve_all:
            decision, reason = "run", "approved up front (--yes)"
        elif action_class in (rule.get("ask") or []):
            decision, reason = "ask", f"{severity} policy asks before {action_class} actions"
        else:
            decision, reason = "needs_approval", f"{severity} policy does not run {action_class} actions without --yes"

        gate = {"class": action_class, "severity": severity, "module": module_name, "why": why}
        replay = bool(task_vars.get(REPLAY_VAR))
        if replay and not self._task.check_mode:
            raise AnsibleActionFail(f"{REPLAY_VAR} is set: a replayed diagnosis runs in check mode only")
        if self._task.check_mode:
            planned = (_replayed_plan(module_name, module_args) if replay
                       else self._run_module(module_name, module_args, task_vars, plan=True))
            would = "would run" if decision == "run" else "would ask" if decision == "ask" else "would need approval"
            gate.update(decision="planned", reason=f"check mode: nothing done ({would}: {reason})")
            return self._finish(task_vars, result, gate, planned, changed=False)

        if decision == "ask":
            planned = self._run_module(module_name, module_args, task_vars, plan=True)
            if planned.get("failed"):
                return self._finish(task_vars, result, gate | {"decision": "failed", "reason": "planning failed"}, planned)
            if not _plan_has_work(planned):
                gate.update(decision="noop", reason="nothing to do")
                return self._finish(task_vars, result, gate, planned, changed=False)
            answer = self._ask(task_vars, gate, reason, planned)
            if answer is None:
                gate.update(decision="needs_approval", reason=f"{reason}; nobody answered")
                return self._finish(task_vars, result, gate, planned, changed=False)
            if not answer:
                gate.update(decision="declined", reason="the operator declined")
                return self._finish(task_vars, result, gate, planned, changed=False)
            decision, reason = "run", "approved by the operator"

        if decision == "needs_approval":
            planned = self._run_module(module_name, module_args, task_vars, plan=True)
            if not planned.get("failed") and not _plan_has_work(planned):
                gate.update(decision="noop", reason="nothing to do")
                return self._finish(task_vars, result, gate, planned, changed=False)
            gate.update(decision="needs_approval", reason=reason)
            return self._finish(task_vars, result, gate, planned, changed=False)

        gate.update(decision="run", reason=reason)
        outcome = self._run_module(module_name, module_args, task_vars, plan=False)
        if not outcome.get("failed") and not _plan_has_work(outcome):
            gate.update(decision="noop", reason=f"nothing to do ({reason})")
        return self._finish(task_vars, result, gate, outcome, changed=bool(outcome.get("changed")))

    def _run_module(self, module_name, module_args, task_vars, plan):
        """Run the module, in check mode when only its plan is wanted, with the play's module_defaults for it."""
        module_args = with_module_defaults(self, module_name, module_args)
        saved = self._task.check_mode
        self._task.check_mode = bool(plan or saved)
        try:
            return self._execute_module(module_name=module_name, module_args=module_args, task_vars=task_vars)
        finally:
            self._task.check_mode = saved

    def _ask(self, task_vars, gate, reason, planned):
        """Put the plan to the operator through synap-play's approval folder; None when nobody can answer."""
        folder = task_vars.get("incident_approval_dir") or ""
        if not folder or not os.path.isdir(folder):
            return None
        timeout = int(task_vars.get("incident_approval_timeout", 600))
        request_id = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        request = {
            "id": request_id,
            "task": self._task.get_name(),
            "host": task_vars.get("inventory_hostname"),
            "reason": reason,
            "plan": [a.get("description", str(a)) for a in _planned_actions(gate["module"], planned)],
            **gate,
        }
        request_path = os.path.join(folder, f"{request_id}.request.json")
        answer_path = os.path.join(folder, f"{request_id}.answer.json")
        with open(request_path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(request, handle)
        os.replace(request_path + ".tmp", request_path)  # the CLI never sees a half-written request
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(answer_path):
                with open(answer_path, encoding="utf-8") as handle:
                    return bool(json.load(handle).get("approved"))
            time.sleep(0.1)
        return None

    def _finish(self, task_vars, result, gate, outcome, changed=False):
        result = self._summarise(result, gate, outcome, changed)
        # Every gate decision so far, for the notify role's messages: what was done, what awaits approval.
        done = list(task_vars.get("incident_gate_log") or [])
        done.append({"task": self._task.get_name(), "decision": gate["decision"], "class": gate["class"],
                     "changed": bool(result.get("changed")),
                     "description": "; ".join(a.get("description", "") for a in result["actions"]) or result["msg"]})
        result["ansible_facts"] = {"incident_gate_log": done}
        return result

    @staticmethod
    def _summarise(result, gate, outcome, changed=False):
        outcome = dict(outcome or {})
        outcome.pop("invocation", None)
        decision = gate["decision"]
        summary = outcome.get("msg") or ""
        if outcome.get("failed"):
            result["failed"] = True
            result["msg"] = f"{gate['module']} failed: {summary}"
        else:
            label = {"run": "done", "noop": "nothing to do", "planned": "plan", "needs_approval": "needs approval"}
            result["msg"] = f"[{gate['class']}: {label.get(decision, decision)}] {summary}".rstrip()
        actions = _planned_actions(gate["module"], outcome)
        result.update(changed=changed, gate=gate, actions=actions, result=outcome)
        return result


def _replayed_plan(module_name, module_args):
    """The plan of a replayed decision: the module and its arguments, since the target may not be asked."""
    shown = ", ".join(f"{k}={v}" for k, v in sorted(module_args.items()) if k not in SECRET_ARGS)
    return {"changed": False, "replayed": True, "msg": "replayed: the module was not run",
            "actions": [{"description": f"{module_name}({shown})"}]}


def _planned_actions(module_name, outcome):
    """The module's list of actions; a module that keeps no such list still says what it changed."""
    if outcome.get("actions"):
        return list(outcome["actions"])
    if outcome.get("changed"):
        return [{"description": f"{module_name}: {outcome.get('msg') or 'changed'}"}]
    return []


def _plan_has_work(planned):
    """A plan with no actions and no change means the module has nothing to do."""
    return bool(planned.get("actions")) or bool(planned.get("changed"))
