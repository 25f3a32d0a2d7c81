"""Every info module's result has the documented shape, read or not; and the roles read only fields that exist.

(a) Each info module's gather() against a target that cannot be read: every top-level RETURN key is present,
    ``reachable`` is false with a ``failure`` kind, and the figures are null rather than 0, false or [].
(b) A static check over the roles: every ``<result>.<field>`` a role reads from an info module's result (directly
    registered, or through a synap.ops.diagnose source) is a top-level RETURN key of that module.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_collections.synap.ops.plugins.module_utils import info_modules
from ansible_collections.synap.ops.plugins.module_utils.gather import FAILURE_KINDS

ROOT = Path(__file__).resolve().parents[2]
INFO_MODULES = sorted(path.stem for path in (ROOT / "plugins" / "modules").glob("*_info.py"))
# Keys of every info result, and those Ansible itself adds to a task's result.
COMMON_KEYS = {"changed", "failed", "reachable", "failure", "failures", "msg", "attempts", "skipped", "skip_reason"}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_command(args, cwd=None, environ_update=None, handle_exceptions=True, **_ignored):
    """AnsibleModule.run_command's convention; docker is pointed at a socket where no engine answers."""
    environment = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock", **(environ_update or {})}
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=environment, capture_output=True, text=True,
                          check=False)
    return done.returncode, done.stdout, done.stderr


def load(name):
    return importlib.import_module(f"ansible_collections.synap.ops.plugins.modules.{name}")


def documented(name) -> dict:
    return yaml.safe_load(load(name).RETURN)


def gather(name, args):
    """The look-up as synap-play's first look runs it: found by module name, arguments checked as a module run does."""
    info = info_modules.info_module(f"synap.ops.{name}")
    checked = info.validate(args)
    assert not checked.error_messages, checked.error_messages
    return info.gather(checked.validated_parameters, run_command)


def unreachable_args(tmp_path):
    port = closed_port()
    dsn = f"postgresql://synap:secret-pw@127.0.0.1:{port}/synap"
    return {
        "api_metrics_info": {"url": f"http://127.0.0.1:{port}", "window": 0, "timeout": 2},
        "compose_service_info": {"project_dir": str(tmp_path / "gone"), "services": ["api"], "patterns": ["ERROR"]},
        "deploy_info": {"repo": str(tmp_path / "gone")},
        "external_info": {"endpoints": [{"name": "hub", "url": f"http://127.0.0.1:{port}/health", "timeout": 2}]},
        "inngest_info": {"url": f"http://127.0.0.1:{port}", "timeout": 2},
        "postgres_activity_info": {"dsn": dsn, "connect_timeout": 2},
        "postgres_statements_info": {"dsn": dsn, "connect_timeout": 2, "table": "proposals", "explain_slowest": True},
        "synap_proposals_info": {"dsn": dsn, "connect_timeout": 2},
    }


# Fields that describe the attempt rather than measure the source, so they are set even when nothing was read.
DESCRIPTIVE = {
    "api_metrics_info": {"metrics_url", "error", "health", "latency_seconds", "lifetime"},
    "compose_service_info": {"error"},
    "deploy_info": {"repo", "is_repo", "error"},
    "external_info": {"endpoints", "failing", "slowest"},
    "inngest_info": {"health", "error"},
    "postgres_activity_info": {"error"},
    "postgres_statements_info": {"error"},
    "synap_proposals_info": {"error"},
}


def all_none(value):
    if isinstance(value, dict):
        return all(all_none(v) for v in value.values())
    return value is None


def test_every_info_module_is_covered(tmp_path):
    assert set(unreachable_args(tmp_path)) == set(INFO_MODULES)
    assert set(DESCRIPTIVE) == set(INFO_MODULES)


@pytest.mark.parametrize("name", INFO_MODULES)
def test_every_info_module_runs_its_registered_look_up(name):
    """The registry knows every info module, and the module runs the very look-up the registry gives callers."""
    info = info_modules.info_module(f"synap.ops.{name}")
    assert info is load(name).INFO
    assert info.argument_spec() == load(name).argument_spec()
    assert info_modules.info_module(f"synap.ops.{name.removesuffix('_info')}") is None
    assert info_modules.info_module(f"other.ns.{name}") is None


@pytest.mark.parametrize("name", INFO_MODULES)
def test_unreadable_source_has_every_documented_field(name, tmp_path):
    result = gather(name, unreachable_args(tmp_path)[name])
    returned = documented(name)
    assert set(returned) <= set(result), f"{name} leaves out {sorted(set(returned) - set(result))}"
    assert set(result) - COMMON_KEYS <= set(returned), f"{name} returns undocumented {set(result) - set(returned)}"
    for key in ("reachable", "failure", "failures", "msg"):
        assert key in returned, f"{name} does not document {key}"
        assert returned[key]["returned"] == "always", (name, key)
    assert all(spec["returned"] == "always" for spec in returned.values()), name
    assert result.get("failed") is not True and result["changed"] is False
    assert result["reachable"] is False
    assert result["failure"] in FAILURE_KINDS and result["failure"] != "error", result["failure"]
    assert isinstance(result["failures"], dict) and result["failures"]
    assert isinstance(result["msg"], str) and "\n" not in result["msg"] and "secret-pw" not in str(result)
    measured = {key: result[key] for key in returned if key not in DESCRIPTIVE[name] | COMMON_KEYS}
    assert all(value is None for value in measured.values()), {k: v for k, v in measured.items() if v is not None}
    for key in DESCRIPTIVE[name] & {"latency_seconds", "lifetime"}:
        assert all_none(result[key]), (key, result[key])


@pytest.mark.parametrize("name", INFO_MODULES)
def test_documented_fields_are_always_returned_and_say_when_null(name):
    for key, spec in documented(name).items():
        assert spec["returned"] == "always", (name, key)
    module_doc = yaml.safe_load(load(name).DOCUMENTATION)
    assert "synap.ops.attributes.info" in module_doc["extends_documentation_fragment"]


def test_compose_without_a_docker_engine_is_refused(tmp_path):
    if not shutil.which("docker"):
        pytest.skip("no docker client here")
    (tmp_path / "compose.yml").write_text("services:\n  api:\n    image: busybox\n")
    result = gather("compose_service_info", {"project_dir": str(tmp_path), "services": ["api"], "logs": True})
    assert result["reachable"] is False and result["failure"] == "refused", result
    assert result["services"] is None and result["logs"] is None
    assert "Is the docker daemon running?" in result["error"] and result["msg"].startswith(
        f"compose project {tmp_path} unreadable (refused): ")


def test_compose_without_a_docker_client_is_an_error(tmp_path):
    (tmp_path / "compose.yml").write_text("services:\n  api:\n    image: busybox\n")
    result = gather("compose_service_info", {"project_dir": str(tmp_path), "docker_cli": str(tmp_path / "docker")})
    assert result["reachable"] is False and result["failure"] == "error" and result["services"] is None
    assert result["error"].startswith(f"cannot run {tmp_path / 'docker'}: ")


@pytest.mark.parametrize(("text", "kind"), [
    ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?", "refused"),
    ("permission denied while trying to connect to the Docker daemon socket", "auth_failed"),
    ("no such service: apii", "not_found"),
    ("service api has neither an image nor a build context specified: invalid compose project", "query_failed"),
])
def test_docker_errors_are_classified(text, kind):
    from ansible_collections.synap.ops.plugins.module_utils.compose import classify_docker_error

    assert classify_docker_error(text) == kind


def test_http_failures_are_classified_in_one_place():
    import ssl
    from http.client import BadStatusLine
    from urllib.error import URLError

    from ansible_collections.synap.ops.plugins.module_utils.http_api import failure_kind

    assert failure_kind(URLError(ConnectionRefusedError(111, "Connection refused"))) == "refused"
    assert failure_kind(URLError(TimeoutError("timed out"))) == "timeout"
    assert failure_kind(OSError("reset")) == "error"
    assert failure_kind(URLError(socket.gaierror(-2, "Name or service not known"))) == "dns"
    assert failure_kind(URLError(ssl.SSLCertVerificationError(1, "certificate verify failed"))) == "tls"
    assert failure_kind(BadStatusLine("SSH-2.0-OpenSSH")) == "not_understood"
    assert failure_kind(ValueError("unknown url type")) == "error"
    assert [failure_kind(status=s) for s in (401, 403, 404, 500, 503)] == [
        "auth_failed", "auth_failed", "http_error", "http_error", "http_error"]


# -- (b) the roles' reads --------------------------------------------------------------------------------------

ROLES = ROOT / "roles"
SOURCE_REF = re.compile(r"\{\{\s*([A-Za-z_]\w*)\.sources\.([A-Za-z_]\w*)\s*\}\}")
DICT_METHODS = {"get", "keys", "items", "values"}


def yaml_files(role: Path):
    for folder in ("tasks", "vars", "defaults", "handlers"):
        yield from sorted((role / folder).glob("*.yml")) if (role / folder).is_dir() else []


def walk_tasks(tasks):
    """Every task of a task list, blocks opened."""
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        yield task
        for section in ("block", "rescue", "always"):
            yield from walk_tasks(task.get(section))


def info_module(name) -> str | None:
    short = str(name).rsplit(".", 1)[-1]
    return short if short in INFO_MODULES else None


def registered_results(role: Path) -> tuple[dict, dict]:
    """``(direct, diagnosed)``: registered name -> info module; registered name -> {source: info module}."""
    direct, diagnosed = {}, {}
    for path in sorted((role / "tasks").glob("*.yml")) if (role / "tasks").is_dir() else []:
        for task in walk_tasks(yaml.safe_load(path.read_text()) or []):
            registered = task.get("register")
            if not registered:
                continue
            for key, value in task.items():
                if key.rsplit(".", 1)[-1] == "diagnose" and isinstance(value, dict):
                    diagnosed[registered] = {source: info_module(spec.get("module"))
                                             for source, spec in (value.get("sources") or {}).items()
                                             if isinstance(spec, dict) and info_module(spec.get("module"))}
                elif info_module(key):
                    direct[registered] = info_module(key)
    return direct, diagnosed


def result_variables(role: Path) -> dict:
    """Every name in the role that holds an info module's result -> that module."""
    direct, diagnosed = registered_results(role)
    names = dict(direct)
    for path in yaml_files(role):
        if path.parent.name not in ("vars", "defaults"):
            continue
        for variable, value in (yaml.safe_load(path.read_text()) or {}).items():
            match = SOURCE_REF.fullmatch(str(value).strip())
            if match and match.group(2) in diagnosed.get(match.group(1), {}):
                names[variable] = diagnosed[match.group(1)][match.group(2)]
    for registered, sources in diagnosed.items():
        for source, module in sources.items():
            names[f"{registered}.sources.{source}"] = module
    return names


def fields_read(text: str, variable: str):
    """The top-level fields read from ``variable`` in ``text``: ``var.field``, ``var['field']``, ``var.get('field')``."""
    name = re.escape(variable)
    for match in re.finditer(rf"(?<![\w.]){name}(?:\.(\w+)(\s*\(\s*['\"](\w+)['\"])?|\[\s*['\"](\w+)['\"]\s*\])",
                             text):
        attribute, call, argument, key = match.groups()
        if attribute in DICT_METHODS:
            if call and argument:
                yield argument
        elif attribute or key:
            yield attribute or key


def role_reads():
    """(role, variable, module, field) for every field a role reads from an info module's result."""
    for role in sorted(p for p in ROLES.iterdir() if p.is_dir()):
        variables = result_variables(role)
        text = "\n".join(path.read_text() for path in yaml_files(role))
        for variable, module in sorted(variables.items()):
            for field in sorted(set(fields_read(text, variable))):
                yield role.name, variable, module, field


def test_the_role_scan_finds_the_roles_reads():
    reads = list(role_reads())
    assert reads, "no role reads an info module's result: the scan no longer understands the roles"
    assert {module for _role, _variable, module, _field in reads} <= set(INFO_MODULES)


def test_roles_read_only_documented_fields():
    unknown = sorted({f"{role}: {variable}.{field} ({module})" for role, variable, module, field in role_reads()
                      if field not in set(documented(module)) | COMMON_KEYS})
    assert not unknown, "roles read fields the modules do not return:\n" + "\n".join(unknown)


def test_field_scan_reads_attribute_item_and_get():
    text = "{{ a.queue_depth | int }} {{ a['stuck_count'] }} {{ a.get('run_counts') }} {{ xa.msg }} {{ b.a.msg }}"
    assert sorted(fields_read(text, "a")) == ["queue_depth", "run_counts", "stuck_count"]


def test_a_look_up_refuses_the_arguments_its_module_refuses(module):
    """The option constraints are AnsibleModule's own: the first look checks them as the module run does."""
    args = {"services": ["api"]}
    refused = info_modules.info_module("synap.ops.compose_service_info").validate(args).error_messages
    ran = module("compose_service_info", args)
    assert ran["failed"] is True and refused == [ran["msg"]] == [
        "one of the following is required: project_dir, files, project_name"]
