"""Rehearsals of the five runbook scenarios on the real lab, as CI runs them:
lab reset -> lab inject <fault> -> synap-play <scenario> --severity P1 --yes -i lab (three of them
over SSH, -i lab-ssh) -> the lab's real state checked
with testinfra and plain commands -> the same command again changes nothing and exits 0.
Plus: --check on a freshly injected fault changes nothing; the staging inventory's structure pointed at the lab;
the same playbook run by plain ansible-playbook and by ansible-runner with the repository as project.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pytest
import testinfra
import yaml
from labtools import (
    LAB_DIR,
    ROOT,
    SYNAP_PLAY,
    Load,
    Rehearsal,
    cli,
    curl,
    eventually,
    failures_seen_by_prometheus,
    latency_seen_by_prometheus,
    play,
    psql,
    queue_depth,
    rehearse,
    running_runs,
    sh,
)

from synap_play.lab.access import API_URL, INNGEST_URL
from synap_play.lab.load import run as run_load
from synap_play.lab.stack import Lab

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]
HOST = testinfra.get_host("local://")


@pytest.fixture
def incidents(tmp_path):
    return tmp_path / "incidents"


def container(service: str, index: int = 1):
    return HOST.docker(f"synap-lab-{service}-{index}")


def replicas(service: str) -> int:
    return len(sh(f"docker compose ps -q {service}").split())


def started_at(service: str) -> str:
    return HOST.check_output(f"docker inspect -f '{{{{.State.StartedAt}}}}' synap-lab-{service}-1")


def lab_state() -> dict:
    """What a mitigation would change: containers, the deploy HEAD, integrations, sessions of faulty apps."""
    containers = sorted(HOST.check_output(
        "docker ps -a --filter label=com.docker.compose.project=synap-lab "
        "--format '{{.Names}} {{.State}} {{.CreatedAt}}'").splitlines())
    sessions = psql("SELECT coalesce(string_agg(pid::text, ',' ORDER BY pid), '') FROM pg_stat_activity "
                    "WHERE application_name IN ('synap-reports', 'synap-admin')") \
        if container("postgres").is_running else "down"
    return {
        "containers": [" ".join(line.split()[:2]) for line in containers],
        "started": {s: started_at(s) for s in ("jobs", "postgres", "api") if container(s).is_running},
        "head": sh("git -C state/deploy rev-parse HEAD").strip(),
        "integrations": curl(f"{API_URL}/admin/integrations")[1] if container("api").is_running else "down",
        "sessions": sessions,
        "max_connections": psql("SHOW max_connections") if container("postgres").is_running else "down",
    }


# The lab's Prometheus answers for the metrics window before the question (5 s in the lab inventory), unlike two
# scrapes a window apart, which measure the window after it: a fault injected a moment ago must have filled it.
METRICS_SETTLE = 6

def error_rate_now() -> float:
    return run_load(API_URL, 5, concurrency=2, rate=20).error_rate


def failed_runs() -> int:
    metrics = curl(f"{INNGEST_URL}/metrics")[1]
    return int(sum(float(line.split()[-1]) for line in metrics.splitlines()
                   if line.startswith('inngest_runs{') and 'status="FAILED"' in line))


# -- what each rehearsal must leave behind ------------------------------------------------------------------

def rolled_back(record):
    assert f"Incident: {record['id']}" in sh("git -C state/deploy log -1 --format=%B")
    assert "Revert" in sh("git -C state/deploy log --oneline -10").splitlines()[0]
    assert error_rate_now() < 0.01


def integration_disabled(record):
    assert json.loads(curl(f"{API_URL}/admin/integrations")[1])["integrations"]["hub-protocol"] is False
    assert error_rate_now() < 0.01


def workers_restarted_and_runs_cancelled(record):
    assert container("jobs").is_running
    eventually(lambda: running_runs() == 0, timeout=30)
    assert any(a["status"] == "done" and "restart" in a["task"].lower() for a in record["actions"])


def workers_scaled(record):
    assert replicas("jobs") == 3
    assert queue_depth() <= 100


def long_queries_ended(record):
    assert psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'synap-reports' "
                "AND state = 'active' AND now() - query_start > interval '3 seconds'") == "0"


def postgres_back(record):
    assert container("postgres").is_running
    assert curl(f"{API_URL}/health")[0] == 200


def connections_freed(record):
    assert psql("SHOW max_connections") == "200"
    assert int(psql("SELECT count(*) FROM pg_stat_activity")) < 150
    assert curl(f"{API_URL}/health")[0] == 200


def leak_closed(record):
    assert int(psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'synap-jobs' "
                    "AND state = 'idle' AND state_change < now() - interval '5 seconds'")) < 10


def index_reported_not_scaled(record):
    assert replicas("api") == 1
    [scale] = [a for a in record["actions"] if "Scale" in a["task"]]
    assert scale["status"] == "not needed"
    report = (Path(record["_folder"]) / "report.md").read_text()
    assert "Seq Scan on entities" in report and "workspace_id" in report


def api_scaled_and_index_reported(record):
    assert replicas("api") == 3
    report = (Path(record["_folder"]) / "report.md").read_text()
    assert "Seq Scan on entities" in report and "workspace_id" in report


def locks_released(record):
    assert psql("SELECT count(*) FROM pg_locks WHERE NOT granted") == "0"
    assert psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'synap-admin'") == "0"
    assert any(a["status"] == "done" and "Replay" in a["task"] for a in record["actions"])
    # The replayed requests are validated now that nothing holds the rows.
    eventually(lambda: failed_runs() == failed_before_replay(record), timeout=60)


def failed_before_replay(record) -> int:
    return next(f["details"]["run_counts"].get("FAILED", 0) for f in record["findings"] if f["source"] == "inngest_info")


REHEARSALS = {
    # Run once Prometheus has scraped the failures, as the alert that starts such a run has: a run in the second
    # after the injection reads a window without them, and rightly finds nothing to mitigate.
    "high-error-rate/bad-deploy": Rehearsal("high-error-rate", ["bad-deploy"], rolled_back, load=20,
                                            wait_for=failures_seen_by_prometheus),
    "high-error-rate/external-down": Rehearsal("high-error-rate", ["external-down"], integration_disabled, load=20,
                                               wait_for=failures_seen_by_prometheus),
    "worker-queue-backup/worker-stuck": Rehearsal("worker-queue-backup", ["worker-stuck"],
                                                  workers_restarted_and_runs_cancelled, settle=6),
    "worker-queue-backup/event-storm": Rehearsal("worker-queue-backup", ["queue-backup"], workers_scaled),
    "worker-queue-backup/db-slow": Rehearsal("worker-queue-backup", ["db-slow"], long_queries_ended, settle=4),
    "database-connection-failure/postgres-down": Rehearsal("database-connection-failure", ["postgres-down"],
                                                           postgres_back),
    "database-connection-failure/exhaustion": Rehearsal("database-connection-failure", ["connection-exhaustion"],
                                                        connections_freed),
    "database-connection-failure/leak": Rehearsal("database-connection-failure", ["connection-leak"], leak_closed,
                                                  settle=6),
    # A missing index is not fixed by more replicas: the run reports the plan and index candidate, needs a human.
    # Run once Prometheus sees the slow requests: on a loaded machine a request's sequential scans can take longer
    # than the window, which then holds only the quick ones, and the run rightly finds p95 under its threshold.
    "elevated-latency/missing-index": Rehearsal("elevated-latency", ["latency"], index_reported_not_scaled,
                                                expect=3, load=20, again_changes_nothing=False,
                                                wait_for=latency_seen_by_prometheus),
    # The high-load branch, reached by calling the lab's 20 requests/s high load: it scales the api out. Whether
    # three replicas bring p95 under 0.5 s with the index still missing is the lab's timing, seen both ways: the
    # exit code must follow what the verification measured.
    "elevated-latency/high-load": Rehearsal("elevated-latency", ["latency"], api_scaled_and_index_reported,
                                            expect=None, load=20, again_changes_nothing=False,
                                            wait_for=latency_seen_by_prometheus,
                                            # 20 clients waiting 4-8 s a request make 2.5-5 requests a second on
                                            # this shared machine: "high" for the lab is 1
                                            extra=["-e", "synap_threshold_high_load_requests_per_second=1"]),
    "proposal-system-failure/locks": Rehearsal("proposal-system-failure", ["proposals-stuck"], locks_released,
                                               wait_for=lambda: failed_runs() > 0),
    "proposal-system-failure/worker-stuck": Rehearsal("proposal-system-failure", ["worker-stuck"],
                                                      workers_restarted_and_runs_cancelled, settle=6),
}


# Rehearsed over SSH (inventory/lab-ssh) below, with --check on a fresh fault as well: the same playbook, modules and
# checks as through the local connection, which the other rehearsals take. Each pair runs once.
SSH_REHEARSALS = ["worker-queue-backup/worker-stuck", "database-connection-failure/leak", "high-error-rate/bad-deploy"]


@pytest.mark.parametrize("name", [name for name in REHEARSALS if name not in SSH_REHEARSALS])
def test_rehearsal(name, incidents):
    rehearse(REHEARSALS[name], incidents)


@pytest.mark.parametrize("scenario,fault,load", [
    ("database-connection-failure", "postgres-down", 0),
    ("proposal-system-failure", "proposals-stuck", 0),
])
def test_check_mode_changes_nothing(scenario, fault, load, incidents):
    check_changes_nothing(scenario, fault, load, incidents)


def check_changes_nothing(scenario: str, fault: str, load: float, incidents: Path, inventory: str = "lab") -> dict:
    cli("reset")
    cli("inject", fault)
    time.sleep(6)  # past the lab's time thresholds, so the diagnosis sees the fault
    traffic = Load(load) if load else None
    before = lab_state()
    try:
        code, record = play(scenario, "--severity", "P0", "--yes", "--check", incidents=incidents, inventory=inventory)
    finally:
        if traffic:
            traffic.stop()
    assert code == 3, json.dumps(record, indent=1)[:3000]
    assert record["check_mode"] is True
    assert any(a["status"] == "planned" and a["plan"] for a in record["actions"]), record["actions"]
    assert lab_state() == before
    return record


# -- over SSH: inventory/lab-ssh, the lab's SSH host reached as staging is -------------------------------------------


@pytest.mark.parametrize("name", SSH_REHEARSALS)
def test_rehearsal_over_ssh(name, incidents):
    """The modules travel over SSH and run on the SSH host's Python; docker compose and git run there, against the
    lab's engine and the deploy checkout; the endpoints are the lab network's names (postgres, gateway, inngest).
    The runs before the last kept the plan with Ansible's ssh command for the host, so the last one's first look
    answered on the SSH host, in one session, before the playbook's diagnosis."""
    rehearsal = REHEARSALS[name]
    rehearse(rehearsal, incidents, inventory="lab-ssh")
    record = check_changes_nothing(rehearsal.scenario, rehearsal.faults[0], rehearsal.load, incidents,
                                   inventory="lab-ssh")
    plans = list(Path(os.environ["SYNAP_PLAY_CACHE_DIR"]).glob("plans/*/synap-lab-ssh.json"))
    for plan in plans:
        reach = json.loads(plan.read_text())["ssh"]
        assert reach["command"][-1] == "127.0.0.1" and reach["python"] == "/usr/bin/python3"
    look = record["first_look"]
    assert look and not look["errors"] and look["findings"], json.dumps(look, indent=1)[:3000]
    assert {finding["host"] for finding in look["findings"]} == {"synap-lab-ssh"}


def test_an_unreachable_ssh_host_is_named_and_the_record_closed(incidents):
    cli("reset")
    sh("docker compose stop ssh")
    try:
        code, record = play("worker-queue-backup", "--check", incidents=incidents, inventory="lab-ssh")
    finally:
        Lab().start_ssh_host()
    assert code == 4, json.dumps(record, indent=1)[:3000]
    assert record["status"] == "failed" and record["ended_at"]
    [error] = [e for e in record["errors"] if e.get("unreachable")]
    assert error["host"] == "synap-lab-ssh", record["errors"]


def test_a_slow_ssh_host_still_finishes_within_its_timeouts(incidents):
    """Every new SSH connection waits 3 s before it reaches sshd (a ProxyCommand that sleeps, then relays)."""
    cli("reset")
    state = ROOT / "lab" / "state" / "ssh"
    relay = "bash -c 'sleep 3; exec 3<>/dev/tcp/127.0.0.1/2222; cat <&3 & exec cat >&3'"
    common = (f"-o UserKnownHostsFile={state / 'known_hosts'} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes "
              f'-o ProxyCommand="{relay}"')
    started = time.monotonic()
    code, record = play("worker-queue-backup", "--check", "-e", json.dumps({"ansible_ssh_common_args": common}),
                        incidents=incidents, inventory="lab-ssh")
    assert code == 0, json.dumps(record, indent=1)[:3000]
    assert record["status"] == "healthy"
    assert time.monotonic() - started < 300


def test_staging_inventory_structure_against_the_lab(incidents, tmp_path):
    """inventory/staging as shipped, run against the lab.

    Not overridden: its hosts and groups (synap-staging in synap), its group_vars file (loaded, its environment
    lookups evaluated), the variable names the roles read from it. Overridden, as extra variables on top: every
    variable of inventory/lab's group_vars (endpoints, credentials, compose project and files, deploy checkout,
    Prometheus, thresholds), synap_project_root, and the connection (ansible_connection local, ansible_host
    localhost, ansible_python_interpreter this Python; ansible_user deploy is then unused). So this checks the staging
    inventory's structure, not its values or SSH; a real SSH host with staging's structure is rehearsed by the
    *_over_ssh tests (inventory/lab-ssh)."""
    lab_vars = yaml.safe_load((ROOT / "inventory" / "lab" / "group_vars" / "all.yml").read_text())
    lab_vars.update(synap_project_root=str(ROOT), ansible_connection="local", ansible_host="localhost",
                    ansible_python_interpreter=sys.executable)
    overrides = tmp_path / "staging-over-lab.yml"
    overrides.write_text(yaml.safe_dump(lab_vars))
    cli("reset")
    cli("inject", "worker-stuck")
    time.sleep(6)
    code, record = play("worker-queue-backup", "--severity", "P1", "--yes", "-e", f"@{overrides}",
                        incidents=incidents, inventory="staging")
    assert code == 0, json.dumps(record, indent=1)[:3000]
    assert record["actions"][0]["host"] == "synap-staging"
    workers_restarted_and_runs_cancelled(record)


def task_results(junit_dir: Path) -> tuple[list[tuple[str, str]], list[dict]]:
    """From the junit callback's report of one run: (task as "[host] play: task", ok|changed|skipped|failed|
    included) in the order they ran, and the verifications the incident role recorded."""
    [report] = list(junit_dir.glob("*.xml"))
    outcomes, verifications = [], []
    for case in ET.parse(report).getroot().iter("testcase"):
        if case.find("skipped") is not None:
            outcomes.append((case.get("name"), "skipped"))
            continue
        if case.find("failure") is not None or case.find("error") is not None:
            outcomes.append((case.get("name"), "failed"))
            continue
        output = case.findtext("system-out") or ""
        try:
            result = json.loads(output)
        except json.JSONDecodeError:  # an include names the included file, not a result
            outcomes.append((case.get("name"), "included"))
            continue
        outcomes.append((case.get("name"), "changed" if result.get("changed") else "ok"))
        verification = (result.get("record") or {}).get("verification")
        if verification is not None:
            verifications.append(verification)
    return outcomes, verifications


def verdict(verification: dict) -> tuple:
    """A verification without its measured figures (two runs a minute apart measure different numbers)."""
    return verification["resolved"], [(c["name"], c.get("state"), c.get("ok")) for c in verification["checks"]]


def test_plain_ansible_playbook_and_ansible_runner_run_the_same_playbook(tmp_path):
    cli("reset")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               ANSIBLE_CALLBACKS_ENABLED="junit,synap.ops.incident", JUNIT_HIDE_TASK_ARGUMENTS="true",
               SYNAP_PLAY_INCIDENTS_DIR=str(tmp_path / "incidents"))
    plain = subprocess.run(["ansible-playbook", "-i", "inventory/lab", "playbooks/worker-queue-backup.yml",
                            "-e", "incident_severity=P1"], cwd=ROOT, capture_output=True, text=True,
                           env=dict(env, JUNIT_OUTPUT_DIR=str(tmp_path / "plain")), timeout=300)
    assert plain.returncode == 0, plain.stdout[-3000:]
    assert "failed=0" in plain.stdout
    private = tmp_path / "runner"
    runner = subprocess.run(["ansible-runner", "run", str(private), "--project-dir", str(ROOT), "-p",
                             "playbooks/worker-queue-backup.yml", "--inventory", str(ROOT / "inventory" / "lab"),
                             "--cmdline", "-e incident_severity=P1"],
                            cwd=ROOT, capture_output=True, text=True,
                            env=dict(env, JUNIT_OUTPUT_DIR=str(tmp_path / "by-runner")), timeout=300)
    assert runner.returncode == 0, runner.stdout[-3000:]
    assert "failed=0" in runner.stdout

    # The same tasks, on the same hosts, with the same outcome each, and the same verdict on the healthy lab.
    plain_tasks, plain_verified = task_results(tmp_path / "plain")
    runner_tasks, runner_verified = task_results(tmp_path / "by-runner")
    # Sorted: with several hosts, the results of one task arrive in any order.
    assert plain_tasks and sorted(plain_tasks) == sorted(runner_tasks)
    assert plain_verified and [verdict(v) for v in plain_verified] == [verdict(v) for v in runner_verified]
    assert all(v["resolved"] is True for v in plain_verified), plain_verified


def test_lab_directory_is_the_compose_project():
    assert (LAB_DIR / "compose.yaml").is_file()


def test_two_concurrent_runs_against_the_lab_never_both_mitigate(incidents):
    """The second run of a scenario against the same lab exits 5 naming the holder; --check still runs."""
    cli("reset")
    cli("inject", "latency")
    traffic = Load(20)
    time.sleep(METRICS_SETTLE)
    # The high-load branch (the lab's 20 clients count as high load at 1 request/s): alice scales the api out and
    # then waits on p95 for up to a minute, holding the lock all that time.
    first = subprocess.Popen([*SYNAP_PLAY, "elevated-latency", "-i", "lab", "--severity", "P1", "--yes",
                              "-e", "synap_threshold_high_load_requests_per_second=1",
                              "--operator", "alice", "--output", "json", "--incidents-dir", str(incidents)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=ROOT)
    try:
        # The first run holds the lock for its whole run.
        eventually(lambda: "synap-play lock alice" in psql("SELECT string_agg(application_name, ',') "
                                                           "FROM pg_stat_activity"), timeout=60)
        code, record = play("elevated-latency", "--severity", "P1", "--yes", "--operator", "bob",
                            incidents=incidents)
        assert code == 5, json.dumps(record, indent=1)[:3000]
        assert record["status"] == "locked out"
        assert record["lock"]["holder"]["operator"] == "alice"
        # --check never needs the lock: it diagnoses while alice holds it. What it finds depends on how far alice's
        # scale-out has brought p95 down by then (unresolved, 3, or healthy, 0); never locked out.
        check_code, check = play("elevated-latency", "--check", incidents=incidents)
        assert check_code in (0, 3), json.dumps(check, indent=1)[:3000]
        assert check["check_mode"] is True and check["status"] in ("unresolved", "healthy")
    finally:
        first.communicate(timeout=300)
        traffic.stop()
    # Resolved or not is the lab's timing (three replicas may or may not bring p95 under 0.5 s without the index).
    assert first.returncode in (0, 3)


def _plans(cache: Path) -> list[Path]:
    return sorted(cache.glob("plans/*/*.json"))


def test_first_look_answers_from_the_kept_plan_before_the_playbook(incidents, tmp_path):
    """The first run keeps the diagnosis plan; the next one answers from it before the playbook's first task and
    finds what the playbook finds; a plan that no longer matches what the playbook resolves is called outdated."""
    cache = Path(os.environ["SYNAP_PLAY_CACHE_DIR"])
    cli("reset")
    cli("inject", "connection-leak")
    time.sleep(6)

    code, first = play("database-connection-failure", "--check", incidents=incidents)
    assert code == 3 and "first_look" not in first  # no plan yet
    plans = _plans(cache)
    assert len(plans) == 1 and plans[0].name == "synap-lab.json"
    assert plans[0].stat().st_mode & 0o777 == 0o600  # it carries the inventory's DSN
    kept = json.loads(plans[0].read_text())
    assert set(kept["sources"]) == {"services", "db"}
    assert kept["sources"]["db"]["args"]["dsn"].startswith("postgresql://")  # module_defaults applied

    timings = tmp_path / "timings.jsonl"  # when the first look finished, as the benchmark measures it
    code, second = play("database-connection-failure", "--check", incidents=incidents,
                        env={"SYNAP_PLAY_TIMINGS": str(timings)})
    assert code == 3
    look = second["first_look"]
    finished_unix = [json.loads(line)["unix"] for line in timings.read_text().splitlines()
                     if json.loads(line)["event"] == "first_look_done"][-1]
    assert look["errors"] == [] and look["outdated"] is False
    assert {f["look_up"]: f["source"] for f in look["findings"]} == {
        "services": "compose_service_info", "db": "postgres_activity_info"}
    # Answered before the playbook's own diagnosis, and the same picture: the leaked session is seen by both.
    playbook_db = next(f for f in second["findings"] if f.get("look_up") == "db")
    first_db = next(f for f in look["findings"] if f["look_up"] == "db")
    assert finished_unix < datetime.fromisoformat(playbook_db["at"].replace("Z", "+00:00")).timestamp() + 1
    assert first_db["details"]["idle_sessions"] and playbook_db["details"]["idle_sessions"]
    assert "The first look" in (incidents / second["id"] / "report.md").read_text()

    kept["sources"]["db"]["args"]["idle_threshold"] = 99999  # as if the inventory had resolved otherwise before
    plans[0].write_text(json.dumps(kept))
    code, third = play("database-connection-failure", "--check", incidents=incidents)
    assert code == 3
    assert third["first_look"]["outdated"] is True
    assert any("outdated plan" in entry["event"] for entry in third["timeline"])
    assert "its plan was outdated" in (incidents / third["id"] / "report.md").read_text()
    assert json.loads(plans[0].read_text())["sources"]["db"]["args"]["idle_threshold"] != 99999  # written anew

    shutil.rmtree(cache)
    code, off = play("database-connection-failure", "--check", "--no-first-look", incidents=incidents)
    assert code == 3
    assert "first_look" not in off and _plans(cache) == []
