"""Time to diagnosis: synap-play against the runbook's own commands run by hand, side by side on the lab.

Usage (from the repository root, after scripts/bootstrap, with the Docker engine running)::

    .venv/bin/python bench/run.py            # 5 scenarios x 5 runs, Ansible overhead, fleet, database (about half an hour)
    .venv/bin/python bench/run.py --quick    # 2 runs, smaller overhead and fleet, database at 2 M only
    .venv/bin/python bench/run.py --scenarios high-error-rate,elevated-latency --runs 9 --skip-fleet --skip-db
    .venv/bin/python bench/run.py --scenarios high-error-rate,elevated-latency --without-first-look --scrape-basis
    .venv/bin/python bench/run.py --scenarios none --skip-fleet --skip-db   # Ansible overhead only, no lab
    .venv/bin/python bench/run.py --ssh --skip-fleet --skip-db --skip-overhead   # the scenarios over SSH
    .venv/bin/python bench/run.py --scenarios none --skip-fleet --skip-db --skip-overhead --ssh-fleet   # fleet over SSH
    .venv/bin/python bench/run.py --scenarios none --skip-fleet --skip-db --skip-overhead --triage connection-leak

Each scenario: ``synap-play lab reset``, its fault injected (``synap-play lab load`` in the background where the
diagnosis reads real traffic), one unmeasured synap-play run (it keeps the plan the first look reads), then N
rounds of ``synap-play <scenario> --check --output json -i lab`` and ``bench/baseline/<scenario>.sh`` (the
runbook's Diagnosis Steps as written, pointed at the lab), in alternating order. Measured, from launch: synap-play's
time to diagnosis (the diagnosis printed and recorded: the record's first look, or without one the playbook's
last Assess/Investigate result from the run's events), its first finding, the playbook's own diagnosis and the
whole run; the script's wall time and first line of output. Reported: median, min-max, and the ratio
synap-play / baseline of the medians. ``--without-first-look`` and ``--mitogen`` add each scenario once more
with ``--no-first-look``, and with ``--no-first-look --strategy mitogen``; ``--scrape-basis`` adds each once more
with ``--no-first-look`` and the metrics from two scrapes of the API a window apart instead of the lab's Prometheus
(the basis without one): beside ``--without-first-look``, the playbook's own diagnosis on both bases.

Also measured: the Ansible overhead (interpreter start, an empty playbook, per-task cost from 1..30 trivial
tasks, per-host cost from 1..50 local hosts, a custom-module task); the fleet (one scenario's diagnosis against
generated inventories of 1, 10 and 50 local-connection hosts carrying the lab's group_vars); the database
(bench/pg_diagnostics.py at 2 M and 10 M proposals, on a throwaway cluster; it takes minutes).

Over SSH (the lab's SSH host, ``synap-play lab up``; inventory/lab-ssh): ``--ssh`` runs every scenario's rounds
there instead: ``synap-play <scenario> --check --output json -i lab-ssh``, and the runbook's script on that host
as ``ssh deploy@127.0.0.1 -p 2222 'bash -s' < script``, a fresh connection each run (no ControlMaster). The script
reads on stdin: lab-env.sh's settings as export lines (the endpoints and folders as that host sees them,
inventory/lab-ssh's values), lab-env.sh, then the script without its line sourcing lab-env.sh (``$0`` is ``bash``
there). synap-play's connections use Ansible's ssh defaults (ControlPersist=60s): a round may reuse the master
connection the one before left open, and so may the first look where synap-play keeps a plan for an SSH host;
each run records whether the master's socket existed at launch (``ssh_master_at_launch``).

``--ssh-fleet``: the fleet over SSH, generated inventories of N aliases of the lab's SSH host (inventory/lab-ssh's
connection variables and group_vars, paths made absolute), with levers side by side, round after round: the
defaults (the project's synap.ops.linear strategy, the project's forks 50); Ansible's own linear strategy
(``ANSIBLE_STRATEGY=ansible.builtin.linear``); ``ANSIBLE_FORKS=5``, Ansible's default (ansible-runner hands
synap-play's environment to ansible-playbook, and the variable wins over the project's ansible.cfg);
``--strategy mitogen`` when installed; and
``--no-first-look`` as a reference. The aliases share host, port and user, so Ansible gives them one control path:
after the first connection their sessions share one master (the lab's sshd allows 200 sessions per connection).

Every fault is cleared at the end (``synap-play lab clear``), also after a failure or Ctrl-C. A failed step
prints one line and the run goes on with the next scenario or part. Output: Markdown tables on stdout (ready for
the README) and the full data in bench/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from synap_play.lab import ssh as lab_ssh  # noqa: E402
from synap_play.project import collections_path  # noqa: E402
from synap_play.run_record import TIMINGS_ENV  # noqa: E402
from synap_play.runner import mitogen_strategy_dir  # noqa: E402

BIN = Path(sys.executable).parent
BASELINE_DIR = ROOT / "bench" / "baseline"
RESULTS_DIR = ROOT / "bench" / "results"
LAB_GROUP_VARS = ROOT / "inventory" / "lab" / "group_vars" / "all.yml"
LAB_SSH_INVENTORY = ROOT / "inventory" / "lab-ssh"
TRIAGE = "triage"  # `synap-play triage`: every scenario's diagnosis at once, always a check
# The inventories' paths are relative to the inventory folder; a generated inventory lives elsewhere.
INVENTORY_ROOT = "{{ inventory_dir | dirname | dirname }}"


@dataclass(frozen=True)
class Scenario:
    fault: str
    load: bool  # the diagnosis reads error rate / p95 from real requests


SCENARIOS = {
    "high-error-rate": Scenario("bad-deploy", load=True),
    "worker-queue-backup": Scenario("worker-stuck", load=False),
    "database-connection-failure": Scenario("connection-leak", load=False),
    "elevated-latency": Scenario("latency", load=True),
    "proposal-system-failure": Scenario("proposals-stuck", load=False),
}
# The lab inventory reads error rate and p95 from the lab's Prometheus; this takes them from two scrapes of the API
# a metrics window apart instead, as without a Prometheus.
SCRAPE_BASIS = ("-e", "synap_prometheus_url=")
# The lab's thresholds (idle sessions, stuck runs, the metrics window) are 5 s: let every fault cross them and
# the metrics window fill with traffic that saw the fault before the first measurement.
SETTLE_SECONDS = 6
RUN_TIMEOUT = 600
LAB_TIMEOUT = 900
DB_TIMEOUT = 3 * 3600
DIAGNOSIS_PHASES = ("Assess", "Investigate")
RESULT_EVENTS = ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable")
# lab-env.sh's settings on the lab's SSH host, from inventory/lab-ssh's variables: the endpoints as a host on the
# lab's network sees them, the lab folder and the deploy checkout at their paths there.
SSH_BASELINE_ENV = {
    "SYNAP_LAB_DATABASE_URL": "synap_database_url",
    "SYNAP_LAB_API_URL": "synap_api_url",
    "SYNAP_LAB_INNGEST_URL": "synap_inngest_url",
    "SYNAP_LAB_INNGEST_SIGNING_KEY": "synap_inngest_signing_key",
    "SYNAP_LAB_DIR": "synap_compose_project_dir",
    "SYNAP_LAB_DEPLOY_DIR": "synap_deploy_repo",
    "SYNAP_LAB_STUCK_SECONDS": "synap_threshold_stuck_run_seconds",
}
# The baseline scripts' line sourcing lab-env.sh beside them: `bash -s` has no file to be beside.
LAB_ENV_SOURCE = re.compile(r'^\.\s+"\$\(dirname "\$0"\)/lab-env\.sh"[ \t]*\n?', re.MULTILINE)


class StepFailed(Exception):
    """One step of the benchmark failed; the message is the one line the operator sees."""


def one_line(error: Exception) -> str:
    text = _last_line(str(error)) if str(error).strip() else ""
    return text if isinstance(error, StepFailed) else f"{error.__class__.__name__}: {text or 'no detail'}"


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --- running and timing commands ------------------------------------------------------------------------------

@dataclass
class Timed:
    command: list[str]
    seconds: float
    rc: int
    stdout: str
    stderr: str
    launched_at: float  # epoch, to place the run's own event timestamps
    first_output: float | None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def run_timed(command: list[str], *, env: dict | None = None, timeout: float = RUN_TIMEOUT,
              stdin_text: str | None = None) -> Timed:
    """Run a command, reading its output as it comes: wall time, and when its first line of output appeared.
    STDIN_TEXT, if given, is its standard input (from a file written before the clock starts)."""
    with tempfile.TemporaryFile() as errors, tempfile.TemporaryFile() as given:
        if stdin_text is not None:
            given.write(stdin_text.encode())
            given.seek(0)
        launched_at = time.time()
        start = time.perf_counter()
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL if stdin_text is None else given,
                                stdout=subprocess.PIPE, stderr=errors, start_new_session=True)
        expired = threading.Event()

        def stop() -> None:
            # Its own process group: a script's curl or psql must not outlive it and hold the pipe open.
            expired.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, stop)
        timer.start()
        first_output = None
        chunks = []
        try:
            for line in proc.stdout:
                if first_output is None and line.strip():
                    first_output = time.perf_counter() - start
                chunks.append(line)
            rc = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:  # interrupted: the child has its own session and did not get the Ctrl-C
                stop()
                proc.wait()
        seconds = time.perf_counter() - start
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    if expired.is_set():
        raise StepFailed(f"{Path(command[0]).name} {' '.join(command[1:3])} did not finish within {timeout:.0f} s")
    return Timed(command, seconds, rc, b"".join(chunks).decode(errors="replace"), stderr, launched_at, first_output)


def synap_play(*args: str) -> list[str]:
    found = BIN / "synap-play"
    if found.exists():
        return [str(found), *args]
    on_path = shutil.which("synap-play")
    return [on_path, *args] if on_path else [sys.executable, "-m", "synap_play", *args]


def lab(*args: str) -> None:
    command = synap_play("lab", *args)
    try:
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=LAB_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise StepFailed(f"synap-play lab {' '.join(args)} took longer than {LAB_TIMEOUT} s") from None
    if proc.returncode != 0:
        raise StepFailed(f"synap-play lab {' '.join(args)} failed: {_last_line(proc.stderr or proc.stdout)}")


class BackgroundLoad:
    """`synap-play lab load` while a scenario is measured; started only where needed, ended by its own id."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(synap_play("lab", "load", "--duration", "7200"), cwd=ROOT,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)

    def check(self) -> None:
        if self.proc and self.proc.poll() is not None:
            raise StepFailed(f"synap-play lab load stopped (exit {self.proc.returncode}); is the api up?")

    def stop(self) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- one measurement of each side ---------------------------------------------------------------------------

def _epoch(created: str | None) -> float | None:
    if not created:
        return None
    try:
        moment = datetime.fromisoformat(created)
    except ValueError:
        return None
    # ansible-runner stamps its events in UTC without an offset.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def diagnosis_times(job_events: Path, launched_at: float) -> tuple[float | None, float | None]:
    """From the run's own events: the first diagnostic result, and the last Assess/Investigate result (seconds
    from launch). The record's timestamps are whole seconds; the events carry microseconds."""
    first = complete = None
    for path in job_events.glob("*.json"):
        try:
            event = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if event.get("event") not in RESULT_EVENTS:
            continue
        at = _epoch(event.get("created"))
        if at is None:
            continue
        offset = at - launched_at
        data = event.get("event_data") or {}
        action = data.get("resolved_action") or data.get("task_action") or ""
        finding = action.endswith("_info") or action.endswith(".diagnose")  # diagnose: every source at once
        if event["event"] == "runner_on_ok" and action.startswith("synap.ops.") and finding:
            first = offset if first is None else min(first, offset)
        task = data.get("task") or ""
        if "|" in task and task.split("|", 1)[0].strip().capitalize() in DIAGNOSIS_PHASES:
            complete = offset if complete is None else max(complete, offset)
    return first, complete


def measure_synap_play(scenario: str, inventory: str, incidents_dir: Path, *options: str,
                       env: dict[str, str] | None = None, ssh_host: dict | None = None) -> dict:
    """One `synap-play SCENARIO --check` run with OPTIONS and ENV added to the environment; with SSH_HOST (the
    inventory reaches it over SSH), whether Ansible's master connection to it was open at launch."""
    # The first look's moments come from synap-play's timings file (run_record.TIMINGS_ENV), not from the record.
    timings = incidents_dir / f".timings-{time.time_ns()}.jsonl"
    master_open = ansible_ssh_master_open(ssh_host) if ssh_host else None
    timed = run_timed(synap_play(scenario, *(() if scenario == TRIAGE else ("--check",)), "--output", "json", "-i", inventory,
                                 "--incidents-dir", str(incidents_dir), *options),
                      env={**os.environ, TIMINGS_ENV: str(timings), **(env or {})})
    # 3: a problem was found that needs a human, which is what a --check against an injected fault reports.
    if timed.rc not in (0, 3):
        try:  # the record says what failed
            why = "; ".join(f"{e.get('task')}: {e.get('msg')}" for e in json.loads(timed.stdout)["errors"])
        except (ValueError, KeyError, TypeError):
            why = _last_line(timed.stderr or timed.stdout)
        raise StepFailed(f"synap-play {scenario} --check exited {timed.rc}: {why[:300]}")
    try:
        record = json.loads(timed.stdout)
    except ValueError:
        raise StepFailed(f"synap-play {scenario} --output json printed no record: {_last_line(timed.stdout)}") from None
    first_from_launch, complete = diagnosis_times(incidents_dir / record["id"] / "artifacts" / "job_events",
                                                  timed.launched_at)
    # The first look (a plan kept by an earlier run): its answers are printed and recorded before the playbook's.
    look = record.get("first_look") or {}
    moments = {}
    with contextlib.suppress(OSError):
        for line in timings.read_text(encoding="utf-8").splitlines():
            moments[json.loads(line)["event"]] = json.loads(line)["unix"]
        timings.unlink()
    look_first = moments["first_answer"] - timed.launched_at if "first_answer" in moments else None
    look_done = moments["first_look_done"] - timed.launched_at if "first_look_done" in moments else None
    if look.get("errors") or look.get("outdated"):
        look_done = None  # an incomplete or outdated first look is no diagnosis; the playbook's counts
    firsts = [t for t in (look_first, first_from_launch) if t is not None]
    return {
        "seconds": round(timed.seconds, 3),
        "exit_code": timed.rc,
        "status": record.get("status"),
        "findings": len(record.get("findings") or []),
        "first_look_findings": len(look.get("findings") or []),
        "first_finding_seconds": _round(min(firsts)) if firsts else None,
        "first_look_seconds": _round(look_done),
        "playbook_diagnosis_seconds": _round(complete),
        # Time to diagnosis: the diagnosis printed and recorded, by whichever came first.
        "diagnosis_seconds": _round(look_done if look_done is not None else complete),
        **({"ssh_master_at_launch": master_open} if ssh_host else {}),
    }


def measure_baseline(scenario: str, over_ssh: bool = False) -> dict:
    """The runbook's script for SCENARIO: here, or over_ssh on the lab's SSH host (a fresh connection)."""
    if over_ssh:
        timed = run_timed(ssh_command(lab_ssh_host(), "bash -s"), stdin_text=ssh_baseline_stdin(scenario))
        if timed.rc == 255:  # ssh's own failure, not the script's last command
            raise StepFailed(f"ssh to the lab's SSH host failed: {_last_line(timed.stderr)}")
    else:
        timed = run_timed(["bash", str(BASELINE_DIR / f"{scenario}.sh")])
    # The script's status is its last command's (a grep that matched nothing is 1): recorded, not judged.
    return {
        "seconds": round(timed.seconds, 3),
        "exit_code": timed.rc,
        "first_output_seconds": _round(timed.first_output),
        "output_lines": len(timed.stdout.splitlines()),
        "stderr_tail": _last_line(timed.stderr) if timed.stderr.strip() else "",
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# --- statistics ---------------------------------------------------------------------------------------------

def summary(values) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "n": len(values)}


def ratio(numerator: dict | None, denominator: dict | None) -> float | None:
    if not numerator or not denominator or not denominator["median"]:
        return None
    return round(numerator["median"] / denominator["median"], 2)


def slope(points: list[tuple[float, dict | None]]) -> float | None:
    """Least-squares cost per unit (task, host) through the medians."""
    known = [(x, s["median"]) for x, s in points if s]
    if len({x for x, _ in known}) < 2:
        return None
    xs, ys = zip(*known, strict=True)
    return round(statistics.linear_regression(xs, ys).slope, 3)


def spread(stat: dict | None) -> str:
    if not stat:
        return "-"
    if stat["n"] == 1:
        return f"{stat['median']:.2f}"
    return f"{stat['median']:.2f} ({stat['min']:.2f}–{stat['max']:.2f})"


def number(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{unit}"


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells):
        return "| " + " | ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(headers), "|" + "|".join("-" * (width + 2) for width in widths) + "|",
                      *(line(row) for row in rows)])


# --- inventories and playbooks ------------------------------------------------------------------------------

def absolute(variables: dict) -> dict:
    """An inventory's variables with the project's folder in place of the inventory-relative expression."""
    return {key: value.replace(INVENTORY_ROOT, str(ROOT)) if isinstance(value, str) else value
            for key, value in variables.items()}


def lab_group_vars(path: Path = LAB_GROUP_VARS) -> dict:
    """An inventory's group_vars (the lab's by default), for a generated inventory living elsewhere."""
    return absolute(yaml.safe_load(path.read_text(encoding="utf-8")) or {})


LOCAL_CONNECTION = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}


def write_inventory(folder: Path, hosts: int, group_vars: dict | None = None,
                    connection: dict | None = None) -> Path:
    """An inventory of HOSTS hosts in the group the scenario plays target, each with the CONNECTION variables
    (default: the local connection)."""
    folder.mkdir(parents=True, exist_ok=True)
    members = {f"synap-{index:03d}": dict(connection or LOCAL_CONNECTION) for index in range(1, hosts + 1)}
    (folder / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"synap": {"hosts": members}}}},
                                                     sort_keys=False), encoding="utf-8")
    if group_vars is not None:
        (folder / "group_vars").mkdir(exist_ok=True)
        (folder / "group_vars" / "all.yml").write_text(yaml.safe_dump(group_vars, sort_keys=False), encoding="utf-8")
    return folder


def write_playbook(path: Path, tasks: list[dict]) -> Path:
    play = {"name": "Overhead", "hosts": "all", "gather_facts": False, "tasks": tasks}
    path.write_text(yaml.safe_dump([play], sort_keys=False), encoding="utf-8")
    return path


# --- the lab's SSH host -------------------------------------------------------------------------------------

def lab_ssh_host() -> dict:
    """inventory/lab-ssh's connection variables for its one host, paths absolute, the port the lab was started
    with ($SYNAP_LAB_SSH_PORT, as `synap-play lab up` reads it)."""
    hosts = yaml.safe_load((LAB_SSH_INVENTORY / "hosts.yml").read_text(encoding="utf-8"))["all"]["children"]["synap"]
    variables = absolute(next(iter(hosts["hosts"].values())))
    variables["ansible_port"] = lab_ssh.port()
    return variables


def ssh_command(host: dict, remote_command: str) -> list[str]:
    """ssh to HOST (inventory connection variables) as Ansible reaches it, but a fresh connection of its own:
    no master to share, none left behind."""
    return ["ssh", "-p", str(host["ansible_port"]), "-i", host["ansible_ssh_private_key_file"],
            *shlex.split(host.get("ansible_ssh_common_args") or ""), "-o", "BatchMode=yes",
            "-o", "ControlMaster=no", "-o", "ControlPath=none",
            f"{host['ansible_user']}@{host['ansible_host']}", remote_command]


def ansible_ssh_master_open(host: dict) -> bool:
    """Whether Ansible's master connection to HOST (its ssh_args' ControlPersist=60s) is open: its socket, named as
    the ssh connection plugin names it (control_path_dir / the sha1 of host-port-user, 10 digits)."""
    folder = Path(os.environ.get("ANSIBLE_SSH_CONTROL_PATH_DIR") or "~/.ansible/cp").expanduser()
    key = f"{host['ansible_host']}-{host['ansible_port']}-{host['ansible_user']}"
    return (folder / hashlib.sha1(key.encode()).hexdigest()[:10]).is_socket()


def rendered(value, variables: dict) -> str:
    """A group_vars value as Ansible gives it here: its env lookups and the variables it names filled in."""

    def lookup(plugin: str, name: str, default: str = "") -> str:
        if plugin not in ("env", "ansible.builtin.env"):
            raise StepFailed(f"inventory/lab-ssh: lookup {plugin!r} is not one bench/run.py can fill in")
        return os.environ.get(name, default)

    return jinja2.Template(str(value)).render(variables, lookup=lookup).strip()


def ssh_baseline_stdin(scenario: str) -> str:
    """What `bash -s` on the lab's SSH host reads: lab-env.sh's settings as that host needs them (export lines),
    lab-env.sh itself, then the scenario's script without its line sourcing lab-env.sh. lab-env.sh's SYNAP_ROOT
    (from BASH_SOURCE, empty there) comes out as a folder nothing reads: both paths made from it are set."""
    variables = lab_group_vars(LAB_SSH_INVENTORY / "group_vars" / "all.yml")
    exports = [f"export {name}={shlex.quote(rendered(variables[key], variables))}" for name, key in SSH_BASELINE_ENV.items()]
    script, sourced = LAB_ENV_SOURCE.subn("", (BASELINE_DIR / f"{scenario}.sh").read_text(encoding="utf-8"))
    if sourced != 1:
        raise StepFailed(f"bench/baseline/{scenario}.sh: no single line sourcing lab-env.sh to replace")
    return "\n".join([*exports, (BASELINE_DIR / "lab-env.sh").read_text(encoding="utf-8"), script])


# --- the parts ----------------------------------------------------------------------------------------------

@contextlib.contextmanager
def fault_injected(scenario: str, label: str) -> Iterator[BackgroundLoad]:
    """The lab reset and SCENARIO's fault injected, with load where its diagnosis reads traffic, settled; yields
    the load (to check between measurements), stopped on the way out."""
    spec = SCENARIOS[scenario]
    say(f"{label}: lab reset, inject {spec.fault}")
    lab("reset")
    load = BackgroundLoad()
    try:
        lab("inject", spec.fault)
        if spec.load:
            load.start()
        time.sleep(SETTLE_SECONDS)
        yield load
    finally:
        load.stop()


def bench_scenario(name: str, runs: int, incidents_dir: Path, first_look: bool = True,
                   options: tuple[str, ...] = (), over_ssh: bool = False) -> dict:
    spec = SCENARIOS[name]
    options = (*options, "--first-look" if first_look else "--no-first-look")
    result: dict = {"scenario": name, "fault": spec.fault, "load": spec.load, "options": list(options),
                    "inventory": "lab-ssh" if over_ssh else "lab", "over_ssh": over_ssh,
                    "synap_play": [], "baseline": []}
    try:
        with fault_injected(name, name) as load:
            if first_look:
                # An on-call engineer's synap-play has run this scenario before (a rehearsal, the last incident):
                # that run kept the plan the first look reads (over SSH, where synap-play keeps one, and it
                # leaves Ansible's master connection open as that run would). Not measured.
                say(f"{name}: one unmeasured run keeps the diagnosis plan")
                measure_synap_play(name, result["inventory"], incidents_dir)
            measure_rounds(result, runs, incidents_dir, between=load.check)
    except Exception as error:  # one line, then the next scenario
        result["error"] = one_line(error)
        say(f"{name}: {result['error']}")
    add_scenario_summary(result)
    return result


def measure_rounds(result: dict, runs: int, incidents_dir: Path, between: Callable[[], None] = lambda: None) -> None:
    """RUNS rounds of both sides on the lab as it is (nothing reset or injected here), appended to RESULT's lists
    as they are measured; RESULT names the scenario, the inventory, the options and whether over SSH."""
    name, inventory, options, over_ssh = result["scenario"], result["inventory"], result["options"], result["over_ssh"]
    ssh_host = lab_ssh_host() if over_ssh else None
    for round_number in range(runs):
        # Alternate who goes first, so neither side always meets a warmer cache.
        sides = ["synap_play", "baseline"] if round_number % 2 == 0 else ["baseline", "synap_play"]
        for side in sides:
            between()
            measured = (measure_synap_play(name, inventory, incidents_dir, *options, ssh_host=ssh_host)
                        if side == "synap_play" else measure_baseline(name, over_ssh))
            result[side].append(measured)
        say(f"{name}: round {round_number + 1}/{runs}{' over SSH' if over_ssh else ''}: synap-play diagnosis "
            f"{result['synap_play'][-1]['diagnosis_seconds'] or float('nan'):.2f} s "
            f"(run {result['synap_play'][-1]['seconds']:.2f} s), baseline {result['baseline'][-1]['seconds']:.2f} s")


def bench_triage(fault: str, runs: int, incidents_dir: Path) -> dict:
    """`synap-play triage` beside each scenario's own --check, round after round on one fault: the triage's verdict
    (its first look judged, else the playbook's) against each scenario's time to diagnosis."""
    names = [TRIAGE, *SCENARIOS]
    result: dict = {"fault": fault, "runs": {name: [] for name in names}}
    say(f"triage: lab reset, inject {fault}")
    lab("reset")
    load = BackgroundLoad()
    try:
        lab("inject", fault)
        load.start()  # triage reads the error rate and p95: production has traffic
        time.sleep(SETTLE_SECONDS)
        for name in names:  # each keeps its plan, as an earlier run would have; not measured
            measure_synap_play(name, "lab", incidents_dir)
        for round_number in range(runs):
            for name in names if round_number % 2 == 0 else reversed(names):
                load.check()
                result["runs"][name].append(measure_synap_play(name, "lab", incidents_dir))
            say(f"triage: round {round_number + 1}/{runs}: triage "
                f"{result['runs'][TRIAGE][-1]['diagnosis_seconds'] or float('nan'):.2f} s")
    except Exception as error:  # one line, then the next part
        result["error"] = one_line(error)
        say(f"triage: {result['error']}")
    finally:
        load.stop()
    result["diagnosis_seconds"] = {name: summary(r["diagnosis_seconds"] for r in measured)
                                   for name, measured in result["runs"].items()}
    scenarios = [result["diagnosis_seconds"][name] for name in SCENARIOS if result["diagnosis_seconds"][name]]
    slowest = max(scenarios, key=lambda stat: stat["median"]) if scenarios else None
    result["versus_slowest_scenario"] = ratio(result["diagnosis_seconds"][TRIAGE], slowest)
    return result


def add_scenario_summary(result: dict) -> None:
    sp, base = result["synap_play"], result["baseline"]
    result["summary"] = summary_of = {
        "diagnosis_seconds": summary(r["diagnosis_seconds"] for r in sp),
        "baseline_seconds": summary(r["seconds"] for r in base),
        "first_finding_seconds": summary(r["first_finding_seconds"] for r in sp),
        "baseline_first_output_seconds": summary(r["first_output_seconds"] for r in base),
        "playbook_diagnosis_seconds": summary(r["playbook_diagnosis_seconds"] for r in sp),
        "synap_play_seconds": summary(r["seconds"] for r in sp),
    }
    summary_of["ratio"] = ratio(summary_of["diagnosis_seconds"], summary_of["baseline_seconds"])
    summary_of["playbook_ratio"] = ratio(summary_of["playbook_diagnosis_seconds"], summary_of["baseline_seconds"])
    summary_of["run_ratio"] = ratio(summary_of["synap_play_seconds"], summary_of["baseline_seconds"])


@dataclass(frozen=True)
class Lever:
    """One way of running the fleet's diagnosis: synap-play options, Ansible settings, and optionally forks = the
    number of hosts."""

    name: str
    options: tuple[str, ...] = ()
    forks_per_host: bool = False
    settings: tuple[tuple[str, str], ...] = ()

    def env(self, hosts: int) -> dict[str, str] | None:
        # ansible-runner (in synap-play's process) hands synap-play's environment to ansible-playbook, and an
        # ANSIBLE_* variable wins over the project's ansible.cfg.
        env = dict(self.settings) | ({"ANSIBLE_FORKS": str(hosts)} if self.forks_per_host else {})
        return env or None


def project_forks() -> str:
    """The forks the project's ansible.cfg sets (Ansible's 5 without)."""
    config = configparser.ConfigParser(inline_comment_prefixes=("#", ";"))
    config.read(ROOT / "ansible.cfg")
    return config.get("defaults", "forks", fallback="5")


DEFAULTS = Lever(f"defaults (forks {project_forks()})")
# The project's strategy (synap.ops.linear) against Ansible's own, which forks a worker for every host and task.
ANSIBLE_LINEAR = Lever("Ansible's linear strategy", settings=(("ANSIBLE_STRATEGY", "ansible.builtin.linear"),))


def ssh_fleet_levers(chosen: list[str] | None = None) -> tuple[list[Lever], list[str]]:
    """The levers measured side by side over SSH (those whose names start with one of CHOSEN, when given), and a
    note for each left out."""
    levers, notes = _all_ssh_fleet_levers()
    if chosen:
        notes += [f"{lever.name}: not measured in this run" for lever in levers
                  if not any(lever.name.startswith(prefix) for prefix in chosen)]
        levers = [lever for lever in levers if any(lever.name.startswith(prefix) for prefix in chosen)]
    return levers, notes


def _all_ssh_fleet_levers() -> tuple[list[Lever], list[str]]:
    levers = [DEFAULTS, ANSIBLE_LINEAR, Lever("forks 5, Ansible's default", settings=(("ANSIBLE_FORKS", "5"),))]
    notes = []
    if mitogen_strategy_dir():
        levers.append(Lever("--strategy mitogen", ("--strategy", "mitogen")))
    else:
        notes.append("--strategy mitogen not measured: ansible_mitogen is not installed (scripts/bootstrap --speed)")
    # The aliases share host, port and user, so Ansible gives them one master connection; a real fleet has one per
    # host: this lever names each alias's control path after it (as -e, so its plans are its own).
    levers.append(Lever("a connection per host, forks = hosts",
                        ("-e", json.dumps({"ansible_control_path": "%(directory)s/bench-{{ inventory_hostname }}"})),
                        forks_per_host=True))
    levers.append(Lever("--no-first-look", ("--no-first-look",)))
    return levers, notes


def measure_fleet(result: dict, sizes: list[int], runs: int, workdir: Path, incidents_dir: Path, *,
                  group_vars: dict, levers: list[Lever], connection: dict | None = None, ssh_host: dict | None = None,
                  between: Callable[[], None] = lambda: None) -> None:
    """For each size, a generated inventory of that many hosts (CONNECTION's variables, GROUP_VARS) and RUNS rounds
    of RESULT's scenario with every lever in turn, on the lab as it is (nothing reset or injected here); one entry
    per size and lever appended to RESULT's sizes. A lever that fails is dropped for the rest of its size."""
    scenario, label = result["scenario"], result["label"]
    for hosts in sizes:
        inventory = str(write_inventory(workdir / f"{label}-{hosts}", hosts, group_vars, connection))
        # Keeps this inventory's plans for each lever's variables (over SSH: opens the master connections, as a
        # rehearsal would); not measured.
        for lever in levers:
            if "--no-first-look" not in lever.options:
                measure_synap_play(scenario, inventory, incidents_dir, *lever.options, env=lever.env(hosts))
        measured: dict[str, list[dict]] = {lever.name: [] for lever in levers}
        failed: dict[str, str] = {}
        for _ in range(runs):
            for lever in levers:  # side by side, round after round: the lab's drift touches every lever alike
                if lever.name in failed:
                    continue
                between()
                try:
                    measured[lever.name].append(measure_synap_play(scenario, inventory, incidents_dir, *lever.options,
                                                                   env=lever.env(hosts), ssh_host=ssh_host))
                except StepFailed as error:
                    failed[lever.name] = one_line(error)
                    say(f"{label}: {hosts} hosts, {lever.name}: {failed[lever.name]}")
        for lever in levers:
            found = measured[lever.name]
            entry = {"hosts": hosts, "lever": lever.name, "runs": found,
                     "seconds": summary(r["seconds"] for r in found),
                     "diagnosis_seconds": summary(r["diagnosis_seconds"] for r in found)}
            if lever.name in failed:
                entry["error"] = failed[lever.name]
            result["sizes"].append(entry)
            say(f"{label}: {hosts} hosts, {lever.name}: {spread(entry['seconds'])} s")


def add_fleet_ratios(result: dict) -> None:
    """Each size against one host with the same lever: the diagnosis and the whole run."""
    for entry in result["sizes"]:
        one = next((s for s in result["sizes"] if s["hosts"] == 1 and s["lever"] == entry["lever"]), None)
        entry["versus_one_host"] = ratio(entry["diagnosis_seconds"], one and one["diagnosis_seconds"])
        entry["run_versus_one_host"] = ratio(entry["seconds"], one and one["seconds"])


def bench_fleet(scenario: str, sizes: list[int], runs: int, workdir: Path, incidents_dir: Path) -> dict:
    result: dict = {"scenario": scenario, "fault": SCENARIOS[scenario].fault, "forks": project_forks(),
                    "label": "fleet", "sizes": []}
    try:
        with fault_injected(scenario, "fleet") as load:
            measure_fleet(result, sizes, runs, workdir, incidents_dir, group_vars=lab_group_vars(), levers=[DEFAULTS],
                          between=load.check)
    except Exception as error:  # one line, then the next part
        result["error"] = one_line(error)
        say(f"fleet: {result['error']}")
    add_fleet_ratios(result)
    return result


def bench_ssh_fleet(scenario: str, sizes: list[int], runs: int, workdir: Path, incidents_dir: Path,
                    chosen_levers: list[str] | None = None) -> dict:
    """The fleet over SSH: N aliases of the lab's SSH host, the levers side by side."""
    levers, notes = ssh_fleet_levers(chosen_levers)
    result: dict = {"scenario": scenario, "fault": SCENARIOS[scenario].fault, "label": "ssh-fleet",
                    "levers": [lever.name for lever in levers], "notes": notes, "sizes": []}
    try:
        with fault_injected(scenario, "ssh-fleet") as load:
            host = lab_ssh_host()
            measure_fleet(result, sizes, runs, workdir, incidents_dir,
                          group_vars=lab_group_vars(LAB_SSH_INVENTORY / "group_vars" / "all.yml"), levers=levers,
                          connection=host, ssh_host=host, between=load.check)
    except Exception as error:  # one line, then the next part
        result["error"] = one_line(error)
        say(f"ssh-fleet: {result['error']}")
    except KeyboardInterrupt:  # what was measured so far is kept; the run stops after writing it
        result["error"] = "interrupted"
        add_fleet_ratios(result)
        raise Interrupted(result) from None
    add_fleet_ratios(result)
    return result


class Interrupted(KeyboardInterrupt):
    """Ctrl-C inside a part: carries what the part measured before it, for the results file."""

    def __init__(self, measured: dict):
        super().__init__()
        self.measured = measured


def bench_overhead(repeats: int, task_counts: list[int], host_counts: list[int], workdir: Path) -> dict:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
           "ANSIBLE_COLLECTIONS_PATH": str(collections_path(ROOT)), "ANSIBLE_NOCOLOR": "1"}
    playbook_bin = str(BIN / "ansible-playbook") if (BIN / "ansible-playbook").exists() else "ansible-playbook"
    one_host = write_inventory(workdir / "overhead-1", 1)
    ping = {"name": "Trivial task", "ansible.builtin.ping": None}
    repo = workdir / "deploy-repo"
    repo.mkdir()
    for git_args in (["init", "-q"], ["-c", "user.name=bench", "-c", "user.email=bench@synap.invalid", "commit",
                                      "-q", "--allow-empty", "-m", "release"]):
        subprocess.run(["git", "-C", str(repo), *git_args], check=True, capture_output=True)

    measured: dict[str, dict | None] = {}
    errors = []

    def measure(label: str, command: list[str]) -> dict | None:
        try:
            times = []
            for _ in range(repeats):
                timed = run_timed(command, env=env, timeout=RUN_TIMEOUT)
                if timed.rc != 0:
                    raise StepFailed(f"exited {timed.rc}: {_last_line(timed.stdout + timed.stderr)}")
                times.append(timed.seconds)
        except StepFailed as error:
            errors.append(f"{label}: {error}")
            say(f"overhead: {label}: {error}")
            return None
        measured[label] = stat = summary(times)
        say(f"overhead: {label}: {spread(stat)} s")
        return stat

    def playbook(label: str, tasks: list[dict], inventory: Path = one_host) -> dict | None:
        path = write_playbook(workdir / f"{re.sub(r'[^a-z0-9]+', '-', label.lower())}.yml", tasks)
        return measure(label, [playbook_bin, "-i", str(inventory), str(path)])

    measure("python start + import ansible.module_utils.basic",
            [sys.executable, "-c", "import ansible.module_utils.basic"])
    measure("synap-play --help", synap_play("--help"))
    measure("ansible-playbook --version", [playbook_bin, "--version"])
    empty = playbook("empty playbook (1 host, no task)", [])
    by_tasks = [(0, empty)]
    for count in task_counts:
        by_tasks.append((count, playbook(f"{count} trivial task{'s' if count > 1 else ''} (ping)", [ping] * count)))
    custom = playbook("1 custom-module task (synap.ops.deploy_info)",
                      [{"name": "Recent deployments", "synap.ops.deploy_info": {"repo": str(repo)}}])
    single = dict(by_tasks).get(1)
    by_hosts = []
    for hosts in host_counts:
        if hosts == 1 and single:
            by_hosts.append((1, single))  # the same playbook on the same one-host inventory
            continue
        inventory = write_inventory(workdir / f"overhead-{hosts}", hosts)
        by_hosts.append((hosts, playbook(f"1 trivial task on {hosts} local host{'s' if hosts > 1 else ''}",
                                         [ping], inventory)))
    return {
        "repeats": repeats,
        "measured": measured,
        "per_task_seconds": slope(by_tasks),
        "per_host_seconds": slope(by_hosts),
        "first_task_seconds": _round(single["median"] - empty["median"]) if single and empty else None,
        "custom_module_task_seconds": _round(custom["median"] - empty["median"]) if custom and empty else None,
        "errors": errors,
    }


DB_LINE = re.compile(r"^(?P<source>\S+)\s+(?P<query>.+?)\s+(?P<ms>\d+(?:\.\d+)?)\s*(?P<verdict>ok|SLOW)?\s*$")


def parse_pg_diagnostics(output: str) -> list[dict]:
    rows = []
    for line in output.splitlines():
        match = DB_LINE.match(line.strip())
        if match and (match["source"] in ("runbook", "naive") or match["source"].endswith("_info")):
            rows.append({"source": match["source"], "query": match["query"], "ms": float(match["ms"]),
                         "verdict": match["verdict"] or ""})
    return rows


def bench_database(row_counts: list[int]) -> dict:
    result: dict = {"rows": {}, "errors": []}
    for rows in row_counts:
        say(f"database: bench/pg_diagnostics.py --rows {rows} (minutes)")
        command = [sys.executable, str(ROOT / "bench" / "pg_diagnostics.py"), "--rows", str(rows)]
        try:
            timed = run_timed(command, timeout=DB_TIMEOUT)
            if timed.rc != 0:
                raise StepFailed(f"exited {timed.rc}: {_last_line(timed.stderr or timed.stdout)}")
        except StepFailed as error:
            result["errors"].append(f"{rows} rows: {error}")
            say(f"database: {rows} rows: {error}")
            continue
        result["rows"][str(rows)] = parse_pg_diagnostics(timed.stdout)
    return result


# --- output -------------------------------------------------------------------------------------------------

def machine() -> dict:
    info = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                            if line.startswith("model name")), platform.processor())
        meminfo = Path("/proc/meminfo").read_text().split()
        info["memory_gb"] = round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        from ansible.release import __version__ as ansible_version

        info["ansible_core"] = ansible_version
    except ImportError:
        pass
    return info


def render(results: dict) -> str:
    out = []
    m = results["machine"]
    out.append(f"Machine: {m.get('cpu', '?')}, {m.get('cpus')} CPUs, {m.get('memory_gb', '?')} GB, "
               f"Python {m.get('python')}, ansible-core {m.get('ansible_core', '?')}; {results['started_at']}")
    # One table for the lab here, one for the lab over SSH: their baselines and targets differ.
    captions = {False: "Time to diagnosis, seconds from launch: median (min–max); ratio = synap-play / baseline "
                       "(target ≤ 1.0)",
                True: "Time to diagnosis over SSH (-i lab-ssh; the baseline: ssh deploy@lab-ssh-host 'bash -s' < "
                      "script, a fresh connection each run), seconds from launch: median (min–max); ratio = "
                      "synap-play / baseline (target ≤ 3.0)"}
    for over_ssh, caption in captions.items():
        rows = []
        for entry in results.get("scenarios") or []:
            if bool(entry.get("over_ssh")) != over_ssh:
                continue
            s = entry["summary"]
            rows.append([entry["scenario"], " ".join(entry.get("options") or []), str(len(entry["synap_play"])),
                         spread(s["diagnosis_seconds"]), spread(s["baseline_seconds"]), number(s["ratio"]),
                         spread(s["first_finding_seconds"]), spread(s["baseline_first_output_seconds"]),
                         spread(s["playbook_diagnosis_seconds"]), number(s["playbook_ratio"]),
                         spread(s["synap_play_seconds"]), entry.get("error", "")])
        if rows:
            out += ["", caption, "",
                    markdown_table(["scenario", "options", "runs", "synap-play diagnosis", "baseline script", "ratio",
                                    "1st finding", "baseline 1st output", "playbook's diagnosis", "its ratio",
                                    "whole --check run", "error"], rows)]
    triage = results.get("triage")
    if triage:
        rows = [[name, spread(stat)] for name, stat in triage["diagnosis_seconds"].items()]
        rows.append(["triage / the slowest scenario", number(triage.get("versus_slowest_scenario"), "×")])
        if triage.get("error"):
            rows.append(["error", triage["error"]])
        out += ["", f"Triage's verdict against each scenario's diagnosis, side by side ({triage['fault']} injected), "
                "seconds from launch: median (min–max) (target: triage ≤ the slowest scenario)", "",
                markdown_table(["run", "time to diagnosis (triage: its verdict)"], rows)]
    overhead = results.get("overhead")
    if overhead:
        rows = [[label, spread(stat)] for label, stat in overhead["measured"].items()]
        rows += [["→ first task (1 task − empty)", number(overhead["first_task_seconds"])],
                 ["→ per further task (slope)", number(overhead["per_task_seconds"])],
                 ["→ per further host (slope)", number(overhead["per_host_seconds"])],
                 ["→ custom-module task (− empty)", number(overhead["custom_module_task_seconds"])]]
        rows += [[f"error: {error}", "-"] for error in overhead["errors"]]
        out += ["", f"Ansible overhead, seconds (median of {overhead['repeats']}, min–max)", "",
                markdown_table(["measurement", "seconds"], rows)]
    fleet = results.get("fleet")
    if fleet:
        rows = [[str(s["hosts"]), spread(s["diagnosis_seconds"]), number(s["versus_one_host"], "×"),
                 spread(s["seconds"]), number(s["run_versus_one_host"], "×")] for s in fleet["sizes"]]
        if fleet.get("error"):
            rows.append(["error", fleet["error"], "", "", ""])
        out += ["", f"Fleet: synap-play {fleet['scenario']} --check ({fleet['fault']} injected), local-connection "
                f"hosts, forks {fleet['forks']} (target: 50 hosts ≤ 2× one host)", "",
                markdown_table(["hosts", "diagnosis s", "vs 1 host", "whole --check run s", "vs 1 host"], rows)]
    ssh_fleet = results.get("ssh_fleet")
    if ssh_fleet:
        rows = [[str(s["hosts"]), s["lever"], str(len(s["runs"])), spread(s["seconds"]),
                 number(s["run_versus_one_host"], "×"), number(s["diagnosis_seconds"] and s["diagnosis_seconds"]["median"]),
                 number(s["versus_one_host"], "×"), s.get("error", "")] for s in ssh_fleet["sizes"]]
        if ssh_fleet.get("error"):
            rows.append(["error", ssh_fleet["error"], "", "", "", "", "", ""])
        out += ["", f"Fleet over SSH: synap-play {ssh_fleet['scenario']} --check ({ssh_fleet['fault']} injected), "
                "hosts = aliases of the lab's SSH host; vs 1 host = the same lever on one host (targets: 50 hosts "
                "≤ 4× one host for the whole --check run, diagnosis ≤ 1.5×)", "",
                markdown_table(["hosts", "lever", "runs", "whole --check run s", "vs 1 host", "diagnosis s (median)",
                                "vs 1 host", "error"], rows),
                *(["", *ssh_fleet["notes"]] if ssh_fleet.get("notes") else [])]
    database = results.get("database")
    if database and database["rows"]:
        counts = list(database["rows"])
        by_query: dict[tuple[str, str], dict[str, dict]] = {}
        for count, found in database["rows"].items():
            for row in found:
                by_query.setdefault((row["source"], row["query"]), {})[count] = row
        rows = []
        for (source, query), cells in by_query.items():
            verdict = next((c["verdict"] for c in reversed([cells.get(n) for n in counts]) if c and c["verdict"]), "")
            rows.append([source, query, *(number(cells[n]["ms"]) if n in cells else "-" for n in counts), verdict])
        out += ["", "Database: best ms per query (target: every module query ≤ 100 ms at 10 M proposals)", "",
                markdown_table(["source", "query", *(f"{int(n):,} rows" for n in counts), "target"], rows)]
    if database and database["errors"]:
        out += ["", *(f"database error: {error}" for error in database["errors"])]
    return "\n".join(out)


# --- command line -------------------------------------------------------------------------------------------

def int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if not values or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more numbers of at least 1, e.g. 1,10,50")
    return values


def scenario_list(text: str) -> list[str]:
    if text.strip() in ("all", ""):
        return list(SCENARIOS)
    if text.strip() == "none":
        return []
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown scenario {unknown[0]!r}; use all, none or some of "
                                         f"{', '.join(SCENARIOS)}")
    return names


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of at least 1")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0],
                                     epilog="See the module docstring (and the README's Performance section).")
    parser.add_argument("--runs", type=positive, default=None, help="runs of each side per scenario (default 5; 2 with --quick)")
    parser.add_argument("--scenarios", type=scenario_list, default=list(SCENARIOS),
                        help="comma-separated scenario names, 'all' (default) or 'none' (no lab needed)")
    parser.add_argument("--without-first-look", action="store_true",
                        help="also run every scenario with --no-first-look: the playbook's own diagnosis alone")
    parser.add_argument("--mitogen", action="store_true",
                        help="also run every scenario with --no-first-look --strategy mitogen (scripts/bootstrap --speed)")
    parser.add_argument("--scrape-basis", action="store_true",
                        help="add each scenario once more with --no-first-look and error rate and p95 from two "
                             "scrapes of the API a metrics window apart instead of the lab's Prometheus")
    parser.add_argument("--ssh", action="store_true",
                        help="run the scenario rounds over SSH: -i lab-ssh, and the runbook's scripts on the lab's SSH "
                             "host (ssh ... 'bash -s' < script, a fresh connection each run)")
    parser.add_argument("--fleet-levers", type=lambda text: [part.strip() for part in text.split(",") if part.strip()],
                        default=None, metavar="NAMES",
                        help="--ssh-fleet: only the levers whose names start with these (comma-separated), e.g. "
                             "'defaults,a connection per host'")
    parser.add_argument("--triage", metavar="FAULT", default=None,
                        help="also measure synap-play triage beside every scenario's --check with FAULT injected")
    parser.add_argument("--skip-fleet", action="store_true", help="skip the 1/10/50-host fleet measurement")
    parser.add_argument("--ssh-fleet", action="store_true",
                        help="also measure the fleet over SSH (aliases of the lab's SSH host, --fleet-sizes) with the "
                             "levers side by side: defaults, Ansible's linear strategy, Ansible's forks 5, --strategy "
                             "mitogen, a connection per host, --no-first-look")
    parser.add_argument("--skip-db", action="store_true", help="skip bench/pg_diagnostics.py (it takes minutes)")
    parser.add_argument("--skip-overhead", action="store_true", help="skip the Ansible overhead breakdown")
    parser.add_argument("--quick", action="store_true",
                        help="2 runs, overhead with 1 and 10 tasks/hosts, fleet of 1 and 10 hosts, database at 2 M")
    parser.add_argument("--fleet-scenario", choices=list(SCENARIOS), default="database-connection-failure",
                        help="the scenario the fleet measurements diagnose (default database-connection-failure)")
    parser.add_argument("--fleet-sizes", type=int_list, default=None, help="host counts (default 1,10,50)")
    parser.add_argument("--db-rows", type=int_list, default=None,
                        help="proposals for the database part (default 2000000,10000000)")
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default bench/results/<timestamp>.json)")
    args = parser.parse_args(argv)
    args.runs = args.runs or (2 if args.quick else 5)
    args.fleet_sizes = args.fleet_sizes or ([1, 10] if args.quick else [1, 10, 50])
    args.db_rows = args.db_rows or ([2_000_000] if args.quick else [2_000_000, 10_000_000])
    args.task_counts = [1, 10] if args.quick else [1, 10, 30]
    args.host_counts = [1, 10] if args.quick else [1, 10, 50]
    args.overhead_repeats = 3 if args.quick else max(args.runs, 3)
    return args


def main(argv: list[str] | None = None) -> int:
    # The measured lab is the stand-in backend unless asked otherwise: its ten faults, and the timings the README's
    # tables were measured on.
    os.environ.setdefault("SYNAP_LAB_BACKEND", "standin")
    args = parse_args(argv)
    started = datetime.now(UTC)
    output = args.output or RESULTS_DIR / f"{started:%Y%m%dT%H%M%SZ}.json"
    results: dict = {"started_at": started.isoformat(timespec="seconds").replace("+00:00", "Z"), "machine": machine(),
                     "options": {key: (str(value) if isinstance(value, Path) else value)
                                 for key, value in vars(args).items()},
                     "scenarios": []}
    lab_used = False
    code = 0
    with tempfile.TemporaryDirectory(prefix="synap-bench-") as scratch:
        workdir = Path(scratch)
        incidents_dir = workdir / "incidents"
        try:
            # The first look's plans are kept in the bench's own cache: every scenario starts with none.
            os.environ["SYNAP_PLAY_CACHE_DIR"] = str(workdir / "cache")
            runs = [(name, True, ()) for name in args.scenarios]
            if args.without_first_look:
                runs += [(name, False, ()) for name in args.scenarios]
            if args.mitogen:
                runs += [(name, False, ("--strategy", "mitogen")) for name in args.scenarios]
            if args.scrape_basis:
                # The playbook's own diagnosis on the other basis: compare with the --without-first-look rows.
                runs += [(name, False, SCRAPE_BASIS) for name in args.scenarios]
            for name, first_look, options in runs:
                lab_used = True
                try:
                    results["scenarios"].append(bench_scenario(name, args.runs, incidents_dir, first_look, options,
                                                               over_ssh=args.ssh))
                except Exception as error:  # one line, then the next scenario
                    say(f"{name}: {one_line(error)}")
                    results["scenarios"].append({"scenario": name, "error": one_line(error), "over_ssh": args.ssh,
                                                 "synap_play": [], "baseline": []})
                    add_scenario_summary(results["scenarios"][-1])
            if not args.skip_overhead:
                try:
                    results["overhead"] = bench_overhead(args.overhead_repeats, args.task_counts, args.host_counts,
                                                         workdir)
                except Exception as error:  # one line, then the next part
                    say(f"overhead: {one_line(error)}")
            if not args.skip_fleet:
                lab_used = True
                try:
                    results["fleet"] = bench_fleet(args.fleet_scenario, args.fleet_sizes, min(args.runs, 3), workdir,
                                                   incidents_dir)
                except Exception as error:  # one line, then the next part
                    say(f"fleet: {one_line(error)}")
                    results["fleet"] = {"scenario": args.fleet_scenario, "fault": SCENARIOS[args.fleet_scenario].fault,
                                        "forks": project_forks(), "sizes": [], "error": one_line(error)}
            if args.triage:
                lab_used = True
                results["triage"] = bench_triage(args.triage, args.runs, incidents_dir)
            if args.ssh_fleet:
                lab_used = True
                try:
                    results["ssh_fleet"] = bench_ssh_fleet(args.fleet_scenario, args.fleet_sizes, min(args.runs, 3),
                                                           workdir, incidents_dir, args.fleet_levers)
                except Interrupted as stopped:
                    results["ssh_fleet"] = stopped.measured
                    raise
                except Exception as error:  # one line, then the next part
                    say(f"ssh-fleet: {one_line(error)}")
                    results["ssh_fleet"] = {"scenario": args.fleet_scenario,
                                            "fault": SCENARIOS[args.fleet_scenario].fault, "sizes": [],
                                            "error": one_line(error)}
            if not args.skip_db:
                try:
                    results["database"] = bench_database(args.db_rows)
                except Exception as error:  # one line; the tables of the other parts still print
                    say(f"database: {one_line(error)}")
        except KeyboardInterrupt:
            say("interrupted: clearing the lab and writing what was measured")
            code = 130
        finally:
            if lab_used:
                try:
                    lab("clear")
                except Exception as error:
                    say(f"lab clear: {one_line(error)}")
            results["ended_at"] = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(render(results))
    say(f"results written to {output}")
    return code


if __name__ == "__main__":
    sys.exit(main())
