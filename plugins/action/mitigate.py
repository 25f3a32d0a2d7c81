# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The severity gate: the one place that decides whether a mitigation runs.

Every mitigation task in every playbook goes through this action and declares its class. The module
behind it is first run in check mode whenever the decision is not "run": the operator (or the record)
sees the exact plan — the pids, runs or services — before anything happens.

Being where a diagnosis turns into a mitigation, it also follows up the notify role's PagerDuty trigger: the
findings before the first mitigation it weighs, the acknowledge just before the first one that does something
(plugin_utils/pagerduty_follow_up.py).
"""

from __future__ import annotations

import functools
import json
import os
import time
import uuid

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible_collections.synap.ops.plugins.plugin_utils.action_args import refuse_unknown
from ansible_collections.synap.ops.plugins.plugin_utils.inner_module import with_module_defaults
from ansible_collections.synap.ops.plugins.plugin_utils.pagerduty_follow_up import PagerDutyFollowUp
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import ACTION_STATUS, Decision, RunVar, approval_paths
from ansible_collections.synap.ops.plugins.plugin_utils.replay import recording
from ansible_collections.synap.ops.plugins.plugin_utils.shared_answers import asked_once

CLASSES = ("diagnose", "safe", "disruptive", "destructive")
OPTIONS = {"class", "module", "args", "why"}
SECRET_ARGS = {"dsn", "login_password", "signing_key", "event_key", "token", "password"}
# What check mode says the gate would have done.
WOULD = {Decision.RUN: "would run", Decision.ASK: "would ask", Decision.NEEDS_APPROVAL: "would need approval"}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        self._pagerduty = PagerDutyFollowUp(task_vars, check_mode=self._task.check_mode, has_work=_plan_has_work)
        args = dict(self._task.args)
        refuse_unknown(args, OPTIONS)
        action_class = args.get("class")
        if action_class not in CLASSES:
            raise AnsibleActionFail(f"class must be one of {', '.join(CLASSES)}, got {action_class!r}")
        module_name = args.get("module")
        if not module_name:
            raise AnsibleActionFail("module is required: the module that carries out the mitigation")
        module_args = dict(args.get("args") or {})
        why = args.get("why") or ""

        severity = task_vars.get(RunVar.SEVERITY.value, "P2")
        policy = task_vars.get("incident_severity_policy")
        if not isinstance(policy, dict) or severity not in policy:
            raise AnsibleActionFail(
                f"no severity policy for {severity}: use the synap.ops.incident role in this play "
                "(it defines incident_severity_policy)"
            )
        rule = policy[severity] or {}
        approve_all = boolean(task_vars.get(RunVar.APPROVE.value, False), strict=False)

        approval = _approval(task_vars, self._task.get_name())
        if action_class == "diagnose" or action_class in (rule.get("run") or []):
            decision, reason = Decision.RUN, f"{severity} policy runs {action_class} actions"
        elif approve_all:
            decision, reason = Decision.RUN, "approved up front (--yes)"
        elif approval and not self._task.check_mode:
            return self._run_approved(task_vars, result, module_name, module_args, why, action_class, severity,
                                      approval)
        elif action_class in (rule.get("ask") or []):
            decision, reason = Decision.ASK, f"{severity} policy asks before {action_class} actions"
        else:
            decision, reason = Decision.NEEDS_APPROVAL, f"{severity} policy does not run {action_class} actions without --yes"

        gate = {"class": action_class, "severity": severity, "module": module_name, "why": why}
        replay = recording(self._task, task_vars) is not None
        if self._task.check_mode:
            planned = (_replayed_plan(module_name, module_args) if replay
                       else self._run_module(module_name, module_args, task_vars, plan=True))
            return self._finish(task_vars, result, gate, Decision.PLANNED,
                                f"check mode: nothing done ({WOULD[decision]}: {reason})", planned)

        if decision == Decision.ASK:
            planned = self._run_module(module_name, module_args, task_vars, plan=True)
            if planned.get("failed"):
                return self._finish(task_vars, result, gate, Decision.FAILED, "planning failed", planned)
            if not _plan_has_work(planned):
                return self._finish(task_vars, result, gate, Decision.NOOP, "nothing to do", planned)
            answer = self._ask(task_vars, gate, reason, planned)
            if answer is None:
                return self._finish(task_vars, result, gate, Decision.NEEDS_APPROVAL, f"{reason}; nobody answered",
                                    planned)
            if not answer:
                return self._finish(task_vars, result, gate, Decision.DECLINED, "the operator declined", planned)
            decision, reason = Decision.RUN, "approved by the operator"

        if decision == Decision.NEEDS_APPROVAL:
            planned = self._run_module(module_name, module_args, task_vars, plan=True)
            if not planned.get("failed") and not _plan_has_work(planned):
                return self._finish(task_vars, result, gate, Decision.NOOP, "nothing to do", planned)
            return self._finish(task_vars, result, gate, Decision.NEEDS_APPROVAL, reason, planned)

        return self._carry_out(task_vars, result, gate, module_name, module_args, decision, reason)

    def _carry_out(self, task_vars, result, gate, module_name, module_args, decision, reason):
        """Run the mitigation for real; a run that found nothing to change says so."""
        outcome = self._run_module(module_name, module_args, task_vars, plan=False)
        if not outcome.get("failed") and not _plan_has_work(outcome):
            decision, reason = Decision.NOOP, f"nothing to do ({reason})"
        return self._finish(task_vars, result, gate, decision, reason, outcome, changed=bool(outcome.get("changed")))

    def _run_approved(self, task_vars, result, module_name, module_args, why, action_class, severity, approval):
        """A step a person approved after an earlier run held it back: planned again against the system as it is
        now, and run only when that fresh plan still has work. The earlier plan is never what runs."""
        gate = {"class": action_class, "severity": severity, "module": module_name, "why": why,
                "approval_of": approval}
        planned = self._run_module(module_name, module_args, task_vars, plan=True)
        if planned.get("failed"):
            return self._finish(task_vars, result, gate, Decision.FAILED, "planning the approved step again failed",
                                planned)
        if not _plan_has_work(planned):
            return self._finish(task_vars, result, gate, Decision.NOOP,
                                f"approved for incident {approval}, but planned again there is nothing to do", planned)
        gate["plan"] = [a.get("description", str(a)) for a in _planned_actions(module_name, planned)]
        reason = (f"approved for incident {approval} by {task_vars.get(RunVar.OPERATOR.value) or 'the operator'}; "
                  "planned again just now")
        return self._carry_out(task_vars, result, gate, module_name, module_args, Decision.RUN, reason)

    def _run_module(self, module_name, module_args, task_vars, plan):
        """Run the module, in check mode when only its plan is wanted, with the play's module_defaults for it."""
        self._pagerduty.findings_once()
        if not plan:
            self._pagerduty.acknowledge_before_run(
                functools.partial(self._run_module, module_name, module_args, task_vars, plan=True))
        module_args = with_module_defaults(self, module_name, module_args)
        saved = self._task.check_mode
        self._task.check_mode = bool(plan or saved)
        try:
            # In check mode nothing changes between the hosts, so hosts that are one machine plan alike; in a real
            # run another host's step may just have changed what a plan would find.
            outcome, _asked_by = asked_once(
                self, task_vars, module_name, module_args,
                functools.partial(self._execute_module, module_name=module_name, module_args=module_args,
                                  task_vars=task_vars), share=saved)
        finally:
            self._task.check_mode = saved
        if plan:
            self._pagerduty.plan_seen(outcome)
        return outcome

    def _ask(self, task_vars, gate, reason, planned):
        """Put the plan to the operator through synap-play's approval folder; None when nobody can answer."""
        folder = task_vars.get(RunVar.APPROVAL_DIR.value) or ""
        if not folder or not os.path.isdir(folder):
            return None
        timeout = int(task_vars.get(RunVar.APPROVAL_TIMEOUT.value, 600))
        request_id = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        request = {
            "id": request_id,
            "task": self._task.get_name(),
            "host": task_vars.get("inventory_hostname"),
            "reason": reason,
            "plan": [a.get("description", str(a)) for a in _planned_actions(gate["module"], planned)],
            **gate,
        }
        request_path, answer_path = approval_paths(folder, request_id)
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

    def _finish(self, task_vars, result, gate, decision, reason, outcome, changed=False):
        """The task's result for the gate's ``decision`` (a Decision) and ``outcome`` (the module's result)."""
        gate.update(decision=decision.value, reason=reason)
        result = self._summarise(result, gate, outcome, changed)
        # Every gate decision so far, for the notify role's messages: what was done, what awaits approval.
        done = list(task_vars.get("incident_gate_log") or [])
        done.append({"task": self._task.get_name(), "decision": gate["decision"], "class": gate["class"],
                     "changed": bool(result.get("changed")),
                     "description": "; ".join(a.get("description", "") for a in result["actions"]) or result["msg"]})
        result["ansible_facts"] = {"incident_gate_log": done}
        self._pagerduty.report(result, ran=decision == Decision.RUN)
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
            result["msg"] = f"[{gate['class']}: {ACTION_STATUS.get(decision, decision)}] {summary}".rstrip()
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


def _approval(task_vars, task_name):
    """The incident whose held-back step this task is, when an approval run carries it out; else None.

    A step is a task name, on every host or on the one the approval names."""
    approval_of = task_vars.get(RunVar.APPROVAL_OF.value)
    if not approval_of:
        return None
    host = task_vars.get("inventory_hostname")
    for step in task_vars.get(RunVar.APPROVED_STEPS.value) or []:
        if isinstance(step, dict) and step.get("task") == task_name and step.get("host") in (None, "", host):
            return str(approval_of)
    return None
