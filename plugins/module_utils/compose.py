# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place that runs ``docker compose``: always an argument list, never a shell string."""

from __future__ import annotations

import datetime
import json
import os
import re
import time

# Docker prints RFC 3339 times with nanoseconds; Python parses at most microseconds.
_DOCKER_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")
_NEVER = "0001-01-01T00:00:00Z"
# The labels docker compose puts on the containers it makes.
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"


def compose_argument_spec():
    """Options every module that drives a compose project shares (documented in doc_fragments/compose.py)."""
    return dict(
        project_dir=dict(type="path"),
        files=dict(type="list", elements="path"),
        project_name=dict(type="str"),
        docker_cli=dict(type="path", default="docker"),
    )


def compose_given(params):
    """Whether the options name a compose project at all."""
    return bool(params.get("project_dir") or params.get("files") or params.get("project_name"))


def parse_docker_time(text):
    """Seconds since the epoch of a Docker timestamp, or None for Docker's 'never' or an empty value."""
    if not text or text == _NEVER:
        return None
    match = _DOCKER_TIME.match(text.strip())
    if not match:
        return None
    whole, fraction, zone = match.groups()
    zone = "+00:00" if zone == "Z" else zone
    moment = datetime.datetime.fromisoformat(whole + zone)
    return moment.timestamp() + (float("0." + fraction) if fraction else 0.0)


def compile_patterns(texts):
    """[(text, regex)] for log patterns; ValueError says which one does not compile and what to do."""
    compiled = []
    for text in texts:
        try:
            compiled.append((text, re.compile(text)))
        except re.error as exc:
            raise ValueError(
                f"pattern {text!r} is not a valid regular expression ({exc}); escape special characters"
            ) from None
    return compiled


def summarize_log(lines, patterns, match_lines):
    """{lines, tail, matches: {pattern: {count, last}}} for the log lines read from one service."""
    matches = {}
    for text, pattern in patterns:
        hits = [line for line in lines if pattern.search(line)]
        matches[text] = {"count": len(hits), "last": hits[-match_lines:] if match_lines else []}
    return {"lines": len(lines), "tail": lines, "matches": matches}


def describe_log(entry):
    """'3 ERROR, 1 global-validator in last 100 log lines' -- one service's log summary in a few words."""
    if not entry["matches"]:
        return f"{entry['lines']} log lines read"
    counts = ", ".join(f"{match['count']} {text}" for text, match in entry["matches"].items())
    return f"{counts} in last {entry['lines']} log lines"


# docker's words for the failure kinds of the info modules' results; the first kind with a matching fragment wins.
DOCKER_FAILURE_PATTERNS = (
    ("refused", ("cannot connect to the docker daemon", "is the docker daemon running", "error during connect",
                 "connection refused")),
    ("timeout", ("timeout", "timed out", "deadline exceeded")),
    ("auth_failed", ("permission denied",)),
    ("not_found", ("no such service", "no configuration file provided", "no such file or directory",
                   "not found")),
)


def classify_docker_error(text):
    """The failure kind of a docker command that failed: ``query_failed`` (docker answered, the command did not)
    unless its words say the engine is not there, access is denied or the project or service does not exist."""
    lowered = (text or "").lower()
    for kind, fragments in DOCKER_FAILURE_PATTERNS:
        if any(fragment in lowered for fragment in fragments):
            return kind
    return "query_failed"


class ComposeError(Exception):
    """A compose project that could not be read or driven; ``kind`` is the failure kind of an info result."""

    def __init__(self, message, kind="error"):
        super().__init__(message)
        self.kind = kind


class Compose:
    """A compose project on this host, addressed by project dir, files and name as ``docker compose`` is."""

    def __init__(self, run_command, project_dir=None, files=None, project_name=None, docker_cli="docker"):
        self.run_command = run_command
        self.project_dir = project_dir
        self.files = list(files or [])
        self.project_name = project_name
        self.docker_cli = docker_cli
        self.commands = []

    @classmethod
    def from_params(cls, params, run_command):
        """The project the module options name; ``run_command`` is AnsibleModule.run_command or a stand-in."""
        return cls(run_command, params["project_dir"], params["files"], params["project_name"], params["docker_cli"])

    def base_command(self):
        command = [self.docker_cli, "compose"]
        if self.project_dir:
            command += ["--project-directory", self.project_dir]
        for path in self.files:
            command += ["--file", path]
        if self.project_name:
            command += ["--project-name", self.project_name]
        return command

    def check_paths(self):
        """Raise ComposeError when the project directory or a compose file is missing: compose itself would
        quietly report an empty project for a directory that does not exist."""
        if self.project_dir and not os.path.isdir(self.project_dir):
            raise ComposeError(
                f"project directory {self.project_dir} does not exist: set project_dir to the directory of the "
                "compose project",
                "not_found",
            )
        for path in self.files:
            if not os.path.isfile(path):
                raise ComposeError(f"compose file {path} does not exist: set files to the project's compose files",
                                   "not_found")

    def _execute(self, command, cwd=None):
        # handle_exceptions=False: a missing docker client becomes our one-line error, not Ansible's generic one.
        try:
            return self.run_command(command, cwd=cwd, handle_exceptions=False)
        except OSError as exc:
            reason = f"cannot run {self.docker_cli}: {exc.strerror}; set docker_cli to the docker client"
            raise ComposeError(reason) from None

    def run(self, args, record=True):
        """Run ``docker compose <args>``; return stdout. A non-zero exit raises ComposeError with compose's words."""
        command = self.base_command() + list(args)
        if record:
            self.commands.append(" ".join(command))
        rc, out, err = self._execute(command, cwd=self.project_dir or None)
        if rc != 0:
            detail = (err or out).strip().splitlines()
            raise ComposeError(
                "docker compose {} failed (rc={}): {}".format(" ".join(args), rc, detail[-1] if detail else "no output"),
                classify_docker_error(err or out),
            )
        return out

    def docker(self, args):
        rc, out, err = self._execute([self.docker_cli] + list(args))
        if rc != 0:
            raise ComposeError(f"docker {args[0]} failed: {(err or out).strip()}", classify_docker_error(err or out))
        return out

    def labelled(self):
        """The project's containers as the engine labels them (compose's own labels), or None without a project
        name. ``docker ps`` answers in a few hundredths of a second; ``docker compose ps`` first reads and
        interpolates the compose files, ten times longer, which is most of a diagnosis's wait for this look-up.
        One listing can serve a look-up's state and logs alike (``listed`` below): each docker call is a process."""
        if not self.project_name:
            return None
        out = self.docker(["ps", "--all", "--no-trunc", "--filter", f"label={PROJECT_LABEL}={self.project_name}",
                           "--format", "\t".join(("{{.ID}}", "{{.Names}}", "{{.State}}", "{{.Status}}",
                                                  f'{{{{.Label "{SERVICE_LABEL}"}}}}',
                                                  f'{{{{.Label "{ONEOFF_LABEL}"}}}}'))])
        rows = []
        for line in out.splitlines():
            fields = line.split("\t")
            if len(fields) != 6:
                raise ComposeError(f"docker ps answered a line that is not the expected one: {line[:200]!r}",
                                   "not_understood")
            container_id, name, state, status, service, oneoff = fields
            # `docker compose run` containers are not the service's, as compose ps leaves them out too.
            if oneoff != "True":
                rows.append({"ID": container_id, "Name": name, "State": state, "Status": status, "Service": service})
        return rows

    def _labelled(self, services=None, listed=None):
        """The services' containers, from ``listed`` (what labelled() answered) when given, else asked now."""
        rows = self.labelled() if listed is None else listed
        return None if rows is None else [row for row in rows if not services or row["Service"] in services]

    def containers(self, services=None, listed=None):
        """Containers of the project (every state), one dict each, with start time and restart count."""
        rows = self._labelled(services, listed)
        if rows is None:
            out = self.run(["ps", "--all", "--format", "json"] + list(services or []), record=False)
            text = out.strip()
            # Older compose v2 printed one JSON array; newer prints one JSON object per line.
            lines = [text] if text.startswith("[") else [line for line in text.splitlines() if line.strip()]
            rows = []
        else:
            lines = []
        try:
            for line in lines:
                parsed = json.loads(line)
                rows.extend(parsed if isinstance(parsed, list) else [parsed])
            details = {}
            if rows:
                inspected = json.loads(self.docker(["inspect"] + [row["ID"] for row in rows]))
                details = {item["Id"][:12]: item for item in inspected}
        except (ValueError, TypeError, KeyError) as exc:
            raise ComposeError(f"docker answered something that is not the JSON expected: {exc}",
                               "not_understood") from None
        containers = []
        for row in rows:
            detail = details.get(row["ID"][:12], {})
            state = detail.get("State", {})
            containers.append(
                {
                    "id": row["ID"][:12],
                    "name": row.get("Name", ""),
                    "service": row.get("Service", ""),
                    "state": row.get("State", ""),
                    "health": row.get("Health", "") or (state.get("Health") or {}).get("Status", ""),
                    "status": row.get("Status", ""),
                    "exit_code": row.get("ExitCode", state.get("ExitCode", 0)),
                    "restart_count": detail.get("RestartCount", 0),
                    "created_at": detail.get("Created", ""),
                    "started_at": state.get("StartedAt", "") if state.get("StartedAt") != _NEVER else "",
                }
            )
        return containers

    def logs(self, service, tail, listed=None):
        """The last ``tail`` lines each of the service's containers wrote (stdout and stderr), without prefixes."""
        rows = self._labelled([service], listed)
        if rows is None:
            out = self.run(["logs", "--no-color", "--no-log-prefix", "--tail", str(tail), service], record=False)
            return out.splitlines()
        stamped = []
        for row in rows:
            # docker logs writes the container's stderr to its own stderr: both streams, put back in order by the
            # engine's timestamps, as compose logs shows them.
            rc, out, err = self._execute([self.docker_cli, "logs", "--timestamps", "--tail", str(tail), row["ID"]])
            if rc != 0:
                raise ComposeError(f"docker logs {service} failed: {(err or out).strip()}", classify_docker_error(err or out))
            stamped += [line.partition(" ") for line in (out + err).splitlines() if line]
        return [text for _stamp, _space, text in sorted(stamped, key=lambda parts: parts[0])]

    def recreate(self, service):
        """Replace the service's containers with new ones (the runbook's ``down api`` + ``up -d api``)."""
        self.run(["up", "--detach", "--force-recreate", "--no-deps", service])

    def wait_ready(self, services, timeout, expected=None):
        """Poll until every service has its expected number of running containers, healthy where it has a
        healthcheck. Returns (ready, state); ``expected`` maps service -> replicas (default: all it has)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.services(services)
            waiting = [name for name in services if not _ready(state.get(name), (expected or {}).get(name))]
            if not waiting or time.monotonic() >= deadline:
                return not waiting, state
            time.sleep(1)

    def services(self, names=None, listed=None):
        """Containers grouped by service: {service: {containers, replicas, running, healthy, ...}}."""
        grouped = {}
        for name in names or []:
            grouped[name] = []
        for container in self.containers(names, listed):
            grouped.setdefault(container["service"], []).append(container)
        now = time.time()
        summary = {}
        for service, containers in sorted(grouped.items()):
            running = [c for c in containers if c["state"] == "running"]
            started = [parse_docker_time(c["started_at"]) for c in running]
            started = [s for s in started if s is not None]
            created = [parse_docker_time(c["created_at"]) for c in containers]
            created = [s for s in created if s is not None]
            with_health = [c for c in running if c["health"]]
            summary[service] = {
                "containers": containers,
                "replicas": len(containers),
                "running": len(running),
                "healthy": bool(running)
                and len(with_health) == len(running)
                and all(c["health"] == "healthy" for c in running),
                "has_healthcheck": bool(with_health),
                "restarts": sum(c["restart_count"] for c in containers),
                "last_started_seconds_ago": round(now - max(started), 1) if started else None,
                "last_created_at": max(created) if created else None,
            }
        return summary


def _ready(service, expected):
    if service is None:
        return expected == 0
    wanted = service["replicas"] if expected is None else expected
    if service["running"] != wanted:
        return False
    running = [c for c in service["containers"] if c["state"] == "running"]
    # "starting" means the healthcheck has not passed yet; a container without a healthcheck is ready once up.
    return all(c["health"] in ("", "healthy") for c in running)


def describe_service(name, service):
    """'api 3/3 running, healthy, 2 restarts' -- the state of one service in a few words."""
    if service is None or service["replicas"] == 0:
        return f"{name} no container"
    words = [f"{name} {service['running']}/{service['replicas']} running"]
    healths = sorted({c["health"] for c in service["containers"] if c["state"] == "running" and c["health"]})
    if healths:
        words.append("/".join(healths))
    stopped = sorted({c["state"] for c in service["containers"] if c["state"] != "running"})
    if stopped:
        words.append("/".join(stopped))
    if service["restarts"]:
        words.append(f"{service['restarts']} restarts")
    return ", ".join(words)
