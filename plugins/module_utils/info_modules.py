# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every synap.ops info module's look-up by module name, for callers that are not a module run.

Each info module's work lives in the module_utils file named after it, as ``INFO`` (gather.InfoModule: its
``argument_spec()``, the constraints between its options and its ``gather()``); the module runs it. synap-play's
first look, and synap.ops.diagnose for a host on the local connection, find it here by the module's name and run
it in their own process with ``run_in_process()``. A look-up is imported when it is first asked for, so a caller pays only
for the libraries of the look-ups it runs (psycopg for the PostgreSQL ones, prometheus_client for the metrics).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.common.parameters import remove_values
from ansible_collections.synap.ops.plugins.module_utils.gather import GatherFailed

COLLECTION = "synap.ops"
MAX_THREADS = 16
_PACKAGE = "ansible_collections.synap.ops.plugins.module_utils"
# Every info module of the collection: plugins/modules/<name>.py runs module_utils/<name>.py's INFO.
INFO_MODULES = (
    "api_metrics_info",
    "compose_service_info",
    "deploy_info",
    "external_info",
    "inngest_info",
    "postgres_activity_info",
    "postgres_statements_info",
    "synap_proposals_info",
)


def location(module):
    """The module_utils module holding the look-up of ``module`` (synap.ops.deploy_info), or None when it has none."""
    namespace, _dot, name = module.rpartition(".")
    if namespace != COLLECTION or name not in INFO_MODULES:
        return None
    return f"{_PACKAGE}.{name}"


def info_module(module):
    """The InfoModule of ``module`` (synap.ops.deploy_info); None for a module without one. Raises ImportError
    when its look-up cannot be imported here (a library it needs is missing)."""
    path = location(module)
    return importlib.import_module(path).INFO if path else None


def import_all():
    """Import every look-up this Python can run (ImportError skipped): done once in a process that then forks
    workers (ansible-playbook), each worker has them without importing psycopg and the rest again."""
    for name in INFO_MODULES:
        with contextlib.suppress(ImportError):
            info_module(f"{COLLECTION}.{name}")


def run_command(args, cwd=None, environ_update=None, handle_exceptions=True, **_ignored):
    """AnsibleModule.run_command's calling convention, for a gather() run outside a module."""
    environment = {**os.environ, **(environ_update or {})}
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=environment, capture_output=True, text=True,
                          check=False)
    return done.returncode, done.stdout, done.stderr


def _secrets(info, spec, params):
    """What a module run would mask in its result: the no_log options' values and those ``hidden`` names."""
    values = {str(params[name]) for name, option in spec.items()
              if option.get("no_log") and params.get(name) not in (None, "")}
    if info.hidden:
        values.update(str(value) for value in info.hidden(params) if value)
    return values


def run_in_process(module, args):
    """One look-up as its module would answer it, in this process: the module's own argument checks, its gather(),
    its secrets masked. A failure is a result too (``failed``); ImportError when it cannot be loaded here."""
    info = info_module(module)
    if info is None:
        return {"failed": True, "msg": f"{module} has no gather(): it can only run as a module"}
    spec = info.argument_spec()
    checked = info.validate(args)
    if checked.error_messages:
        return {"failed": True, "msg": f"{module}: {'; '.join(checked.error_messages)}"}
    params = checked.validated_parameters
    try:
        result = info.gather(params, run_command)
    except GatherFailed as exc:
        result = {"failed": True, "msg": exc.msg, **exc.details}
    except Exception as exc:  # a look-up that breaks is reported, never allowed to stop the run
        result = {"failed": True, "msg": f"{module}: {exc.__class__.__name__}: {exc}"}
    # JSON, as a module's result is (a gather() may return dates or tuples).
    result = json.loads(json.dumps(result, default=str))
    return remove_values(result, _secrets(info, spec, params))


def look_up(module, args):
    """One look-up as its module would answer it, here; a module that cannot be loaded here is a failure too."""
    try:
        return run_in_process(module, args)
    except ImportError as exc:
        return {"failed": True, "msg": f"{module} cannot be loaded here: {exc}"}


def look_up_all(calls, on_answer):
    """Answer ``calls`` (a list of (module, args)) side by side in threads of this process, calling
    ``on_answer(index, result)`` as each lands (from its thread, one at a time).

    Threads, not processes: most of a look-up's cost is importing its module's libraries (psycopg, ansible's
    module_utils), which threads of one process do once. The look-ups are imported one after the other before the
    threads start: two threads importing one package with circular imports at once can find it half initialised.
    """
    for module in sorted({module for module, _args in calls}):
        with contextlib.suppress(ImportError):  # look_up() reports it
            info_module(module)
    answering = threading.Lock()

    def answer(index):
        result = look_up(*calls[index])
        with answering:
            on_answer(index, result)

    if calls:
        with ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(calls)), thread_name_prefix="look-up") as pool:
            list(pool.map(answer, range(len(calls))))
