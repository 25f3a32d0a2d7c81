# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""synap.ops.compose_service_info's look-up: state and recent logs of docker compose services.

plugins/modules/compose_service_info.py documents it and runs ``INFO``; synap-play's first look calls ``gather`` itself.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.synap.ops.plugins.module_utils.compose import (
    Compose,
    ComposeError,
    compile_patterns,
    compose_argument_spec,
    describe_log,
    describe_service,
    summarize_log,
)
from ansible_collections.synap.ops.plugins.module_utils.gather import GatherFailed, InfoModule, PartFailures, shaped

# Every documented field but msg and the common ones.
RESULT_FIELDS = ("error", "services", "logs")


def argument_spec():
    spec = compose_argument_spec()
    spec.update(
        services=dict(type="list", elements="str", default=[]),
        logs=dict(type="bool", default=False),
        logs_of=dict(type="list", elements="str", default=[]),
        tail=dict(type="int", default=100),
        patterns=dict(type="list", elements="str", default=[]),
        match_lines=dict(type="int", default=5),
    )
    return spec


def gather(params, run_command):
    """The module's result from its validated ``params``, running docker through ``run_command``."""
    for option in ("tail", "match_lines"):
        if params[option] < 0:
            raise GatherFailed(f"{option} must be 0 or more, got {params[option]}")
    try:
        patterns = compile_patterns(params["patterns"])
    except ValueError as exc:
        raise GatherFailed(str(exc)) from None
    want_logs = params["logs"] or bool(patterns) or bool(params["logs_of"])
    # The services whose logs are read: those named for it, else those reported (every one when none is named).
    logs_of = params["logs_of"] or params["services"]

    compose = Compose.from_params(params, run_command)
    project = params["project_name"] or params["project_dir"] or ", ".join(params["files"] or [])
    failures = PartFailures()
    result = {}
    early = {}
    try:
        compose.check_paths()
        # Each docker call is a process start of its own: one listing of the project's containers serves the state
        # and every log read, and with the services named, their logs are read while the state is, not after it.
        listed = compose.labelled()
        with ThreadPoolExecutor(max_workers=1 + len(logs_of)) as pool:
            early = {name: pool.submit(compose.logs, name, params["tail"], listed)
                     for name in (logs_of if want_logs else [])}
            result["services"] = compose.services(params["services"] or None, listed)
    except ComposeError as exc:
        # The diagnosis goes on: an unreadable project is itself what was found.
        failures.add("services", exc.kind, str(exc))
        if want_logs:
            failures.add("logs", exc.kind, "not read: the project could not be read")
        shaped(result, RESULT_FIELDS, failures)
        result.update(error=str(exc), msg=f"compose project {project} unreadable ({exc.kind}): {exc}")
        return result

    if want_logs:
        result["logs"], unread, kind = {}, [], None
        for name in logs_of or list(result["services"]):
            try:
                lines = early[name].result() if name in early else compose.logs(name, params["tail"], listed)
            except ComposeError as exc:
                result["logs"][name] = None
                unread.append(f"{name}: {exc}")
                kind = kind or exc.kind
                continue
            result["logs"][name] = summarize_log(lines, patterns, params["match_lines"])
        if unread:
            failures.add("logs", kind, "; ".join(unread))
    shaped(result, RESULT_FIELDS, failures)
    result["error"] = "; ".join(failures.reasons.values()) or None

    parts = []
    for name, service in result["services"].items():
        part = describe_service(name, service)
        if (result["logs"] or {}).get(name):
            part += f" ({describe_log(result['logs'][name])})"
        parts.append(part)
    result["msg"] = "; ".join(parts) or f"compose project {project}: no containers"
    if failures:
        result["msg"] += f"; NOT READ from compose project {project} ({failures.kind}): {result['error']}"
    return result


INFO = InfoModule(argument_spec, gather, required_one_of=[("project_dir", "files", "project_name")])
