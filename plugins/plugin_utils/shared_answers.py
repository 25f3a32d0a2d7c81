# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Look-ups alike across the hosts of one task, asked once.

A fleet's hosts often reach one machine under several names (aliases of one SSH host; every host on the local
connection is the controller itself) and, in the same task, ask it the same question: the same module with the
same arguments, from the same place. Asking it once per name is the fleet's cost growing with its size for
nothing. The first host to ask runs the look-up; the others, in worker processes of their own, wait for its
answer on a file lock and take it. Only what reads is shared (the diagnosis's info modules, a mitigation's
plan); a step that changes something is run by each host itself.

A host asking again in the same task (a Resolve step's `until` retries) has already taken the answer there is:
it asks afresh, and its new answer is the one the others take next. The answers live in a private folder of the
run (the incident callback's, in the record's play variable), removed when the record closes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import RunVar

ANSWERS_KEY = "answers"  # the folder's key in the record's play variable (RunVar.RECORD)
# The inventory setting that turns sharing off (roles/synap's synap_share_lookups).
SHARE_VAR = "synap_share_lookups"


def new_answers_folder(incident_id: str) -> str:
    """A private folder for one run's shared answers (they hold what the sources said: its owner's only)."""
    return tempfile.mkdtemp(prefix=f"synap-play-answers-{incident_id}-")


def remove_answers_folder(folder: str | None) -> None:
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def where_it_runs(action) -> dict[str, Any]:
    """What decides which machine, as whom, answers an action's module: two hosts alike here are one machine
    asked the same way. On the local connection that is the controller whatever the host's name; elsewhere the
    connection's own address for the host and its ssh arguments count, not the inventory name."""
    play_context, connection = action._play_context, action._connection
    where = {"transport": connection.transport, "become": bool(play_context.become),
             "become_user": play_context.become_user if play_context.become else None}
    if connection.transport.split(".")[-1] in ("local", "mitogen_local"):
        return where
    where.update(host=play_context.remote_addr, port=play_context.port, user=play_context.remote_user)
    for option in ("host", "port", "remote_user", "ssh_args", "ssh_common_args", "ssh_extra_args"):
        with contextlib.suppress(Exception):  # a connection plugin without the option
            where[option] = connection.get_option(option)
    return where


def shared_folder(action, task_vars: dict[str, Any]) -> str | None:
    """The run's answers folder when this task may share its look-ups; None when each host asks for itself (a
    task environment, which could differ per host, makes every look-up its own)."""
    record = task_vars.get(RunVar.RECORD.value)
    folder = record.get(ANSWERS_KEY) if isinstance(record, dict) else None
    if not folder or not os.path.isdir(folder) or any(action._task.environment or ()):  # Ansible's default: [{}]
        return None
    return folder if boolean(task_vars.get(SHARE_VAR, True), strict=False) else None


def asked_once(action, task_vars: dict[str, Any], module: str, args: dict[str, Any],
               ask: Callable[[], dict[str, Any]], share: bool = True) -> tuple[dict[str, Any], str | None]:
    """The answer to ACTION's look-up of MODULE with ARGS, asked once for the hosts of its task that are one machine
    asked alike (answer_once), or asked here when it may not be shared (SHARE false, no answers folder, a task
    environment): (the answer, the host that asked it, when another did)."""
    folder = shared_folder(action, task_vars) if share else None
    if folder is None:
        return ask(), None
    question = {"task": action._task._uuid, "module": module, "args": args, "check": bool(action._task.check_mode),
                "where": where_it_runs(action)}
    return answer_once(folder, question, task_vars.get("inventory_hostname") or "localhost", ask)


def answer_once(folder: str, question: dict[str, Any], host: str,
                ask: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], str | None]:
    """ASK's answer to QUESTION (the task, module, arguments and where it runs), asked once for every HOST alike:
    (the answer, the host that asked it, when another did). Every host gets the answer as JSON carries it, the
    one who asked too, so all read the same data."""
    key = hashlib.sha256(json.dumps(question, sort_keys=True, default=str).encode()).hexdigest()[:32]
    path = os.path.join(folder, key)
    with open(path + ".lock", "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held while the first host asks; the others wait here for its answer
        try:
            with open(path + ".json", encoding="utf-8") as handle:
                entry = json.load(handle)
        except (OSError, ValueError):
            entry = None
        if entry is not None and host not in entry["taken_by"]:
            entry["taken_by"].append(host)
            _write(path + ".json", entry)
            return entry["answer"], entry["asked_by"]
        answer = json.loads(json.dumps(ask(), default=str))
        _write(path + ".json", {"answer": answer, "asked_by": host, "taken_by": [host]})
        return answer, None


def _write(path: str, entry: dict[str, Any]) -> None:
    temporary = path + ".tmp"
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as out:
        json.dump(entry, out)
    os.replace(temporary, path)
