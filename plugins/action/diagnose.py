# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A scenario's whole Assess step as one task: every data source's info module, side by side.

The data sources (Inngest, PostgreSQL, the compose services, the API's metrics, the deploy checkout) do not
depend on one another, so one task runs their modules at the same time instead of one task each after the
other: the diagnosis costs about one module run, not one per source, and no task overhead per source.

On the local connection (without become) the look-ups run in this process, each info module's gather() in a thread
(module_utils/info_modules.run_in_process: the module's own argument checks and masking), as synap-play's first
look runs them; elsewhere, or for a look-up whose library this Python lacks, as module runs.

Hosts of one task that are one machine reached alike and ask the same look-up share one answer
(plugin_utils/shared_answers.py): a fleet of aliases, or of local-connection hosts, asks each source once.

The resolved calls (module, arguments after module_defaults) are also kept as the scenario's diagnosis plan when
synap-play asks for it (protocol.PLAN_DIR_ENV): its next run of the scenario starts the same look-ups at once,
before ansible-playbook is up (synap-play's first look). For a host on the local connection the controller answers
them; for one reached over SSH the plan also keeps Ansible's own ssh command for it and the Python the modules ran
with, and the first look answers them on that host in one SSH session.

Ansible's templating is not thread-safe, so each look-up's thread holds a turn while Ansible prepares its module
and reads its result, and gives the turn up only while the module runs. ansible-core has no public hook for that
moment: the action overrides ActionBase._low_level_execute_command, through which ActionBase._execute_module sends
the module to the connection. That and the other ansible-core internals used here are checked when the plugin
loads (inner_module.internal), and their behaviour by tests/collection/test_ansible_internals.py.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import json
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import yaml
from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.plugins.connection import ConnectionBase
from ansible.plugins.connection.ssh import Connection as SshConnection
from ansible_collections.synap.ops.plugins.module_utils.info_modules import info_module, run_in_process
from ansible_collections.synap.ops.plugins.plugin_utils.action_args import refuse_unknown
from ansible_collections.synap.ops.plugins.plugin_utils.inner_module import internal, resolve_module, with_module_defaults
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import PLAN_DIR_ENV, RunVar, plan_file
from ansible_collections.synap.ops.plugins.plugin_utils.replay import recording
from ansible_collections.synap.ops.plugins.plugin_utils.shared_answers import asked_once

OPTIONS = {"sources"}
SOURCE_KEYS = {"module", "args", "first_look"}

# Where a module run leaves Ansible's hands for the connection: the turn is given up there (see above).
internal(ActionBase, "_low_level_execute_command", ("cmd", "sudoable", "in_data"))
# Whether modules are piped to the interpreter, sharing no remote file: only then do look-ups overlap.
internal(ActionBase, "_is_pipelining_enabled", ("module_style", "wrap_async"))
# Connecting once before the threads, not lazily by each of them at the same time.
internal(ConnectionBase, "_connect")
# The ssh command Ansible runs for a host, kept in its plan: the first look reaches it exactly as the playbook did.
_build_ssh_command = internal(SshConnection, "_build_command", ("binary", "subsystem"))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._turn = threading.Lock()
        self._holder = threading.local()  # whether this thread holds the turn

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        calls = self._calls(self._task.args)
        replay = recording(self._task, task_vars)
        if replay is not None:
            return self._replayed(result, calls, replay)

        in_process = self._in_process()
        concurrent = len(calls) > 1 and (in_process or self._can_overlap())
        self._connection._connect()  # once here, not lazily by each thread at the same time
        started = time.monotonic()
        answered_here = set()
        if in_process:
            # Imported one after the other before the threads: two threads importing one package with circular
            # imports at once can find it half initialised.
            for call in calls.values():
                with contextlib.suppress(ImportError):
                    info_module(call["module"])

        taken_from = {}

        def ask(name):
            if in_process:
                try:
                    outcome = dict(run_in_process(calls[name]["module"], dict(calls[name]["args"])), changed=False)
                    answered_here.add(name)
                    return outcome
                except ImportError:  # a library this Python lacks: the module, run by its interpreter, answers
                    pass
            # Ansible's templating is not thread-safe: a thread holds the turn while it prepares its module and
            # reads the result, and gives it up only while the module runs (_low_level_execute_command).
            with self._turn:
                self._holder.turn = True
                try:
                    return self._execute_module(module_name=calls[name]["module"],
                                                module_args=dict(calls[name]["args"]), task_vars=task_vars)
                finally:
                    self._holder.turn = False

        def run_one(name):
            begun = time.monotonic()
            # Hosts that are one machine asked alike: one of them asks, the others take its answer.
            outcome, asked_by = asked_once(self, task_vars, calls[name]["module"], calls[name]["args"],
                                           functools.partial(ask, name))
            if asked_by is not None:
                taken_from[name] = asked_by
            outcome.pop("invocation", None)
            return name, outcome, round(time.monotonic() - begun, 3)

        if concurrent:
            with ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="diagnose") as pool:
                finished = list(pool.map(run_one, calls))
        else:
            finished = [run_one(name) for name in calls]

        sources = {name: outcome for name, outcome, _seconds in finished}
        failed = [name for name, outcome in sources.items() if outcome.get("failed")]
        result.update(
            changed=False,
            sources=sources,
            modules={name: call["module"] for name, call in calls.items()},
            seconds={name: seconds for name, _outcome, seconds in finished},
            concurrent=concurrent,
            in_process=sorted(answered_here),
            taken_from=taken_from,
            msg="; ".join(f"{name}: {outcome.get('msg') or ('failed' if outcome.get('failed') else 'done')}"
                          for name, outcome in sources.items()),
        )
        result["seconds"]["all"] = round(time.monotonic() - started, 3)
        if failed:
            result.update(failed=True, msg=f"{len(failed)} of {len(sources)} sources failed: {result['msg']}")
        else:
            self._keep_plan(task_vars, calls)
        return result

    def _replayed(self, result, calls, replay):
        """Answer every look-up from a recording (synap-play replay): no target is contacted.

        A Resolve task measures after the mitigation; a replay runs in check mode, where nothing changed, so it
        reads the Assess answer unless the recording gives an ``after`` one. A look-up the recording lacks is
        answered as unread. Fields a recording lacks (one made before a module returned them) are null, as the
        module itself returns what it could not measure.
        """
        if not isinstance(replay, dict) or not isinstance(replay.get("sources", {}), dict):
            raise AnsibleActionFail(f"{RunVar.REPLAY.value} must be a mapping with sources "
                                    "(look-up name: the module's result)")
        resolving = _phase(self._task) == "resolve"
        sources = {}
        for name, call in calls.items():
            recorded = (replay.get("after") or {}).get(name) if resolving else None
            if recorded is None:
                recorded = (replay.get("sources") or {}).get(name)
            if recorded is None:
                recorded = {"reachable": False, "failure": "not_recorded", "msg": f"{name}: not in the recording"}
            answer = dict.fromkeys(self._return_fields(call["module"]))
            answer.update(recorded, changed=False)
            sources[name] = answer
        result.update(changed=False, sources=sources, replayed=True,
                      modules={name: call["module"] for name, call in calls.items()},
                      msg="; ".join(f"{name}: {answer.get('msg') or 'replayed'}" for name, answer in sources.items()))
        return result

    def _return_fields(self, fqcn):
        """The top-level keys the module documents in RETURN."""
        context = self._shared_loader_obj.module_loader.find_plugin_with_context(fqcn)
        returns = _documented_returns(context.plugin_resolved_path)
        if not returns:  # a replay that silently filled no field would hide what a recording lacks
            raise AnsibleActionFail(f"cannot read the RETURN documentation of {fqcn}; check it with ansible-doc")
        return [key for key in returns if key not in ("changed", "failed")]

    def _in_process(self):
        """Whether the look-ups run in this process rather than as module runs: on the local connection, without
        become, the controller is the target and reads the sources exactly as the modules would, without a Python
        started, and the module shipped, per source (most of a diagnosis's time on a small machine)."""
        return self._connection.transport == "local" and not self._play_context.become

    def _can_overlap(self):
        """Each module piped to its interpreter shares no remote file with the others, so the runs can overlap;
        without pipelining they would share one remote tmp dir, so they run one after the other."""
        try:
            return self._is_pipelining_enabled("new")
        except Exception:  # mitogen's strategy runs modules its own way and refuses the question: one at a time
            return False

    def _low_level_execute_command(self, *args, **kwargs):
        if not getattr(self._holder, "turn", False):
            return super()._low_level_execute_command(*args, **kwargs)
        self._turn.release()
        try:
            return super()._low_level_execute_command(*args, **kwargs)
        finally:
            self._turn.acquire()

    def _calls(self, args):
        refuse_unknown(args, OPTIONS)
        sources = args.get("sources")
        if not isinstance(sources, dict) or not sources:
            raise AnsibleActionFail("sources must be a mapping of names to {module, args}: the look-ups to run")
        calls = {}
        for name, source in sources.items():
            if not isinstance(source, dict) or not source.get("module"):
                raise AnsibleActionFail(f"source {name}: give module (and args): the info module to run")
            unknown = set(source) - SOURCE_KEYS
            if unknown:
                raise AnsibleActionFail(f"source {name}: unsupported key(s) {', '.join(sorted(unknown))}; "
                                        f"use {', '.join(sorted(SOURCE_KEYS))}")
            fqcn = resolve_module(self, source["module"])
            if fqcn is None:
                raise AnsibleActionFail(f"source {name}: no module named {source['module']}")
            # A diagnosis changes nothing: only the read-only info modules belong here.
            if not fqcn.endswith("_info"):
                raise AnsibleActionFail(f"source {name}: {fqcn} is not an info module; a diagnosis only reads")
            calls[name] = {"module": fqcn, "args": with_module_defaults(self, fqcn, source.get("args") or {}),
                           "first_look": dict(source.get("first_look") or {})}
        return calls

    def _keep_plan(self, task_vars, calls):
        """Keep the resolved look-ups for synap-play's first look, when synap-play asked: on the local connection,
        where the controller reaches the data sources exactly as the module did, and over SSH, with how to reach
        the host; never with become, which a first look does not do."""
        folder = os.environ.get(PLAN_DIR_ENV)
        if not folder or self._play_context.become:
            return
        if _phase(self._task) != "assess":  # the Resolve step's look-ups are not the diagnosis to show first
            return
        host = task_vars.get("inventory_hostname") or "localhost"
        plan = {"host": host, "task": self._task.get_name(), "written_at": time.time(), "sources": calls}
        if self._connection.transport == "ssh":
            plan["ssh"] = self._ssh_reach()
            if plan["ssh"] is None:
                return
        elif self._connection.transport != "local":
            return
        os.makedirs(folder, mode=0o700, exist_ok=True)
        # The plan holds the connection settings the inventory holds (DSN, keys): private to its owner.
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".plan-", suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(plan, out, sort_keys=True, default=str)
        os.replace(temporary, plan_file(folder, host))

    def _ssh_reach(self):
        """Ansible's ssh command for this host (ending with the host) and the Python its modules ran with; None
        where a first look cannot follow: a password or passphrase to give, which a first look never asks for."""
        connection = self._connection
        secrets = [self._play_context.password]
        for option in ("password", "private_key_passphrase", "pkcs11_provider"):
            with contextlib.suppress(KeyError):
                secrets.append(connection.get_option(option))
        python = (self._used_interpreter or "").lstrip("#!").strip()
        if any(secrets) or not python:
            return None
        host = connection.get_option("host") or self._play_context.remote_addr
        command = _build_ssh_command(connection, connection.get_option("ssh_executable"), "ssh", host)
        return {"command": [to_text(part, errors="surrogate_or_strict") for part in command], "python": python}


def _documented_returns(path):
    """The RETURN documentation of the module file at ``path``, parsed; {} when it has none that can be read."""
    try:
        with open(path, encoding="utf-8") as source:
            tree = ast.parse(source.read(), path)
        text = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                    and any(getattr(target, "id", None) == "RETURN" for target in node.targets))
        returns = yaml.safe_load(text) if isinstance(text, str) else None
    except (OSError, SyntaxError, ValueError, StopIteration, yaml.YAMLError):
        return {}
    return returns if isinstance(returns, dict) else {}


def _phase(task):
    """The runbook phase a task's own name starts with ("Resolve | ..."); get_name() would put the role's name first."""
    return (task.name or "").split("|", 1)[0].strip().lower()
