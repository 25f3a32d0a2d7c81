# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible's linear strategy, without a worker where a worker only costs: a task that needs no connection, or
whose condition is false for the host.

Ansible forks a worker for every host and task. At a fleet's size most of them did little: a scenario's
mitigations are branches of which one applies, so most workers only found their condition false (at 50 hosts four
skipped mitigations cost 1.5-2 s each), and the role argument checks, set_fact and the record only template their
arguments on the controller. Forks and process start-ups on a busy controller cost more than that work.

- An action Ansible marks as needing no connection (`_requires_connection = False`: set_fact, assert,
  validate_argument_spec, synap.ops.record, ...) runs in the controller's process, through Ansible's own
  TaskExecutor, on a copy of the task (the executor finalises the task it is given, as it would in a worker).
- Another task's condition is evaluated as the worker would (the same variables, the play context's connection
  variables added); when it is false, the strategy gets the same skipped result a worker would have sent.
- A role's argument check whose values, templated for the host, are those another host's check already had,
  takes that check's result: at 50 hosts checking the Synap role's 61 options again was 20 ms a host and role.

Whatever cannot be judged alike goes to a worker as before: a loop (its condition is per item), a delegated task
(its variables are the delegate's), a timeout, until or async (they wait, and the controller must not), and a
condition that does not evaluate here, which the worker then reports as Ansible does.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: linear
short_description: Ansible's linear strategy; a task whose condition is false is skipped without a worker
description:
  - Runs tasks as P(ansible.builtin.linear#strategy) does, in lockstep host batch by host batch.
  - A task whose action needs no connection (set_fact, assert, validate_argument_spec, synap.ops.record, ...)
    runs in the controller's process, through Ansible's task executor, instead of in a worker forked for it.
  - A task whose C(when) is false for a host is skipped on the controller, with the result a worker would have
    sent (the same callbacks, the same registered variable), instead of forking a worker per host to find that out.
  - At a fleet's size these workers, forked only to template a few arguments or find a branch that does not
    apply, were much of a run.
  - A role's argument check (validate_argument_spec) whose values, templated for the host, another host's check
    already had takes that check's result instead of checking the same values again.
  - A task with a loop, C(delegate_to), C(timeout), C(until) or C(async), and a condition that does not evaluate
    on the controller, go to a worker as with P(ansible.builtin.linear#strategy).
author: Synap operations (@synap-ops)
version_added: 0.1.0
notes:
  - The project's ansible.cfg selects it (C(strategy = synap.ops.linear)); C(ANSIBLE_STRATEGY=ansible.builtin.linear)
    or a play's C(strategy) keyword selects Ansible's own.
"""

import json

from ansible._internal import _task
from ansible._internal._templating._engine import TemplateEngine
from ansible.executor.task_executor import TaskExecutor
from ansible.executor.task_result import _RawTaskResult
from ansible.playbook.task import Task
from ansible.plugins import loader as plugin_loader
from ansible.plugins.strategy.linear import StrategyModule as AnsibleLinearStrategy
from ansible.vars.clean import module_response_deepcopy
from ansible_collections.synap.ops.plugins.plugin_utils import templating_caches
from ansible_collections.synap.ops.plugins.plugin_utils.inner_module import internal

# The internals this strategy steps into, checked when it loads (one line naming any that changed).
internal(AnsibleLinearStrategy, "_queue_task", ("host", "task", "task_vars", "play_context"))
internal(Task, "_resolve_conditional", ("conditional", "variables"))
internal(TaskExecutor, "__init__", ("host", "task", "job_vars", "play_context", "loader", "shared_loader_obj",
                                    "final_q", "variable_manager"))

# The tasks run here, the conditions judged here and the workers forked after them share compiled templates and
# the filter and test names no plugin has.
templating_caches.install()


class StrategyModule(AnsibleLinearStrategy):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._connection_free: dict[str, bool] = {}  # by task: looked up once, not for every host
        self._argument_checks: dict[str, tuple[dict, dict]] = {}  # by task and values checked: result, task fields
        self._fixed_checks: dict[str, bool] = {}  # by task: an argument check whose specification is no template

    def _queue_task(self, host, task, task_vars, play_context):
        if not _for_a_worker(task):
            needs_no_connection = self._connection_free.get(task._uuid)
            if needs_no_connection is None:
                needs_no_connection = self._connection_free[task._uuid] = _needs_no_connection(task)
            if needs_no_connection:
                self._hand_result(host, task, task_vars, play_context,
                                  *self._result_here(host, task, task_vars, play_context))
                return
            skipped = self._skipped_result(host, task, task_vars, play_context)
            if skipped is not None:
                self._hand_result(host, task, task_vars, play_context, skipped, task.dump_attrs())
                return
        super()._queue_task(host, task, task_vars, play_context)

    def _result_here(self, host, task, task_vars, play_context) -> tuple[dict, dict]:
        """TASK's result for HOST, run in this process; a role argument check of values another host's check had
        takes that check's result."""
        checked = self._argument_check_key(task, task_vars)
        kept = self._argument_checks.get(checked) if checked else None
        if kept is not None:
            return module_response_deepcopy(kept[0]), kept[1]  # the task's fields are only read
        result, task_fields = self._run_here(host, task, task_vars, play_context)
        if checked:  # kept as it came: what the result's processing does to the one handed on stays with this host
            self._argument_checks[checked] = (module_response_deepcopy(result), task_fields)
        return result, task_fields

    def _run_here(self, host, task, task_vars, play_context) -> tuple[dict, dict]:
        """Run TASK for HOST in this process, as a worker would: Ansible's executor, on copies of what it changes.
        Returns the result and the task's fields as the executor left them."""
        own_task = task.copy(exclude_tasks=True)
        with _task.TaskContext(own_task):
            result = TaskExecutor(host, own_task, dict(task_vars), play_context, self._loader,
                                  plugin_loader.get_plugin_loader_namespace(), self._final_q,
                                  self._variable_manager).run()
        return result, own_task.dump_attrs()

    def _argument_check_key(self, task, task_vars) -> str | None:
        """What a role argument check's result depends on for this host: the task, and its options' values and the
        role's parameters templated with the host's variables, as the check templates them. None for any other
        task, and where the result could differ for another reason: a condition (per host), a specification or
        task name that is itself a template, a value that does not template here (the check then reports it as
        Ansible does)."""
        if task.action not in _ARGUMENT_CHECK or task.when:
            return None
        spec = task.args.get("argument_spec")
        given = task.args.get("provided_arguments") or {}
        fixed = self._fixed_checks.get(task._uuid)
        if fixed is None:
            text = json.dumps([task.name, spec], sort_keys=True, default=repr)
            fixed = self._fixed_checks[task._uuid] = (isinstance(spec, dict) and isinstance(given, dict)
                                                      and not any(mark in text for mark in _TEMPLATE_MARKS))
        if not fixed:
            return None
        templar = TemplateEngine(loader=self._loader, variables=task_vars)
        try:
            values = templar.template({name: task_vars[name] for name in spec if name in task_vars})
            return task._uuid + json.dumps([values, templar.template(given)], sort_keys=True, default=repr)
        except Exception:
            return None

    def _hand_result(self, host, task, task_vars, play_context, result: dict, task_fields: dict):
        """What _queue_task and the worker would do, without the worker: the strategy's result processing finds the
        task in the queued-task cache and counts the pending result down when it arrives on the results queue."""
        self._queued_task_cache[(host.name, task._uuid)] = {
            "host": host, "task": task, "task_vars": task_vars, "play_context": play_context,
        }
        self._tqm.send_callback("v2_runner_on_start", host, task)
        self._pending_results += 1
        self._final_q.send_task_result(_RawTaskResult(host=host, task=task, return_data=result,
                                                      task_fields=task_fields))

    def _skipped_result(self, host, task, task_vars, play_context) -> dict | None:
        """The worker's skipped result when TASK's condition is positively false for HOST, else None (a worker
        runs it: the condition is true, or is not for the controller to judge)."""
        if not task.when:
            return None
        # The worker's variables (TaskExecutor): the search path for look-ups, the play context's magic variables.
        variables = dict(task_vars)
        variables["ansible_search_path"] = search_path = task.get_search_path()
        if self._loader.get_basedir() not in search_path:
            search_path.append(self._loader.get_basedir())
        templar = TemplateEngine(loader=self._loader, variables=variables)
        try:
            with _task.TaskContext(task):
                task_context = play_context.set_task_and_variable_override(task=task, variables=variables,
                                                                           templar=templar)
                task_context.post_validate(templar=templar)
                if not task_context.remote_addr:
                    task_context.remote_addr = host.address
                task_context.update_vars(variables)
                why: dict = {}
                if task._resolve_conditional(task.when, variables, result_context=why):
                    return None
                result = {"changed": False, "skipped": True, "skip_reason": "Conditional result was False", **why}
                task.update_result_no_log(templar, result)
        except Exception:  # the worker evaluates it again and reports the error as Ansible does
            return None
        return result


def _for_a_worker(task) -> bool:
    """What only a worker judges alike: a loop's condition is per item, a delegate's variables are its own, and a
    timeout, until or async waits, which the controller must not."""
    return bool(task.loop is not None or task.loop_with or task.delegate_to is not None or task.timeout
                or task.until or task.async_val)


_ARGUMENT_CHECK = ("validate_argument_spec", "ansible.builtin.validate_argument_spec",
                   "ansible.legacy.validate_argument_spec")
_TEMPLATE_MARKS = ("{{", "{%", "{#")


def _needs_no_connection(task) -> bool:
    """Whether Ansible marks TASK's action as needing no connection (an action named by a template is not known
    before a worker templates it)."""
    if "{{" in task.action or "{%" in task.action:
        return False
    action = plugin_loader.action_loader.get(task.action, class_only=True, collection_list=task.collections)
    return action is not None and getattr(action, "_requires_connection", True) is False
