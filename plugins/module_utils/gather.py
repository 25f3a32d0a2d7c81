# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every diagnostic (``*_info``) module shares: its work is a plain function of its parameters.

An info module's work lives in module_utils, in the file named after it (module_utils/deploy_info.py for
deploy_info), as ``INFO``: an InfoModule holding its ``argument_spec()``, the AnsibleModule constraints between its
options, and ``gather(params, run_command)``, which returns the result or raises ``GatherFailed``. The module file
holds the documentation, and its ``main()`` is ``INFO.run_module()``. The same ``gather`` then serves callers that
are not a module run: synap-play's first look finds it by module name (module_utils/info_modules.py) and calls it
in threads, with parameters checked by ``INFO.validate()`` as a module run checks them.

Every info module's result has the same frame, so a playbook can tell "could not read" from "read, and fine":
``reachable`` (the source answered and its answer was understood), ``failure`` (None, or one of FAILURE_KINDS),
``failures`` (part -> one-line reason) and ``msg``, plus every field the module documents, None when it was not
measured. A source that cannot be read is a finding; only bad arguments raise GatherFailed.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

# The kinds of ``failure``, the same words in every module: a role branches on them.
FAILURE_KINDS = (
    "refused",  # nothing listens there
    "timeout",  # no answer in time
    "dns",  # the host name does not resolve
    "tls",  # TLS handshake or certificate
    "auth_failed",  # credentials refused (a password, a key; HTTP 401/403)
    "database_missing",  # PostgreSQL: the database does not exist
    "too_many_clients",  # PostgreSQL: no connection slot left
    "http_error",  # an HTTP answer other than 2xx
    "not_understood",  # an answer of the wrong shape: an HTML page, garbage JSON, not Prometheus text
    "query_failed",  # connected, but a query or command failed
    "not_found",  # what was asked for does not exist (compose project or service, git checkout, table)
    "error",  # anything else
)
COMMON_FIELDS = ("changed", "reachable", "failure", "failures", "msg")


class GatherFailed(Exception):
    """The module's answer is a failure: ``msg`` plus the result keys that go with it."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details


# A server's answer can be megabytes (an error page, a body echoed back); a message quotes a bounded excerpt. A
# result over ansible-runner's event size limit (MAX_EVENT_RES) would reach the record empty.
MAX_REASON_CHARS = 500
MAX_MSG_CHARS = 2000


def bounded(text, limit):
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if not isinstance(text, str) or len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


class PartFailures:
    """The parts of one reading that could not be read: ``reasons`` (part -> one line) and the first one's kind."""

    def __init__(self):
        self.reasons = {}
        self.kind = None

    def add(self, part, kind, reason):
        self.reasons[part] = bounded(reason, MAX_REASON_CHARS)
        if self.kind is None:
            self.kind = kind

    def __bool__(self):
        return bool(self.reasons)


def shaped(result, fields, failures=None):
    """``result`` with the common frame and every one of ``fields`` present, None where it was not set.

    ``failures`` (a PartFailures) names the parts that could not be read: any of them makes ``reachable`` false
    and ``failure`` the first one's kind. Without one, ``failure`` is None and ``reachable`` true.
    """
    failures = failures or PartFailures()
    for field in fields:
        result.setdefault(field, None)
    result["changed"] = False
    if isinstance(result.get("msg"), str):
        result["msg"] = bounded(result["msg"], MAX_MSG_CHARS)
    result["failures"] = dict(failures.reasons)
    result["failure"] = failures.kind if failures else None
    result["reachable"] = not failures
    return result


def run_gather(module, gather):
    """Exit the module with ``gather(module.params, module.run_command)``, or fail it with the GatherFailed it raised."""
    try:
        result = gather(module.params, module.run_command)
    except GatherFailed as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    module.exit_json(**result)


class InfoModule:
    """One info module's work: its options, the constraints between them, and its look-up.

    ``argument_spec`` and ``gather`` are functions (each call gives a fresh spec, as AnsibleModule alters the one it
    is given). ``constraints`` are AnsibleModule's own keywords (``required_one_of``, ``mutually_exclusive``,
    ``required_together``, ``required_if``, ``required_by``), so a module run and a caller checking the same
    parameters refuse the same things with the same messages. ``hidden(params)``, when given, names values Ansible
    must mask wherever the run's output shows them, beyond the no_log options (a password written into a URL).
    """

    def __init__(self, argument_spec, gather, hidden=None, **constraints):
        self.argument_spec = argument_spec
        self.gather = gather
        self.hidden = hidden
        self.constraints = constraints

    def validate(self, args):
        """``args`` checked and completed as a module run does it: ``error_messages``, ``validated_parameters``."""
        return ArgumentSpecValidator(self.argument_spec(), **self.constraints).validate(args)

    def run_module(self):
        """The module's ``main()``: check the task's arguments, then exit with ``gather()``'s result."""
        module = AnsibleModule(argument_spec=self.argument_spec(), supports_check_mode=True, **self.constraints)
        if self.hidden:
            module.no_log_values.update(self.hidden(module.params))
        run_gather(module, self.gather)
