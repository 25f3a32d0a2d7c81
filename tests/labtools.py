"""Plain-command views of the rehearsal lab, shared by the lab tests and the scenario rehearsals: what an
operator would type (docker compose, psql, curl), so the tests see the lab's real state, not synap-play's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from click.testing import CliRunner

from synap_play.lab import backend, monitoring
from synap_play.lab.access import API_URL, INNGEST_URL
from synap_play.lab.cli import lab
from synap_play.lab.load import run as run_load
from synap_play.lab.stack import Lab
from synap_play.project import project_root

ROOT = project_root()
LAB_DIR = ROOT / "lab"
SYNAP_PLAY = [sys.executable, "-m", "synap_play"]


def play(command: str, *args: str, incidents: Path, inventory: str = "lab",
         env: dict[str, str] | None = None) -> tuple[int, dict]:
    """Run `synap-play <scenario or triage>` as an operator would (no terminal); its exit code and the record it
    printed."""
    proc = subprocess.run([*SYNAP_PLAY, command, "-i", inventory, "--output", "json", "--incidents-dir",
                           str(incidents), *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=600, cwd=ROOT, env=dict(os.environ, **(env or {})))
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def cli(*args: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(lab, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


def docker_answers() -> bool:
    """Whether a Docker engine answers here (scripts/docker-engine start): what every lab test needs."""
    return shutil.which("docker") is not None and not subprocess.run(["docker", "info"], capture_output=True).returncode


def standin_lab() -> Lab:
    """The lab with the stand-in backend, at its seed state: reset in place when it runs already, else (down, when it
    runs Synap's real backend, and) up."""
    stack = Lab()
    running = stack.running_backend() if stack.services() else None
    if running is not None and running.kind == backend.STANDIN:
        cli("reset")
        return stack
    if running is not None:
        cli("down")
    cli("up")
    return stack


def sh(command: str) -> str:
    """A plain shell command run in lab/, as an operator would type it."""
    return subprocess.run(command, shell=True, cwd=LAB_DIR, capture_output=True, text=True, timeout=120).stdout


def psql(sql: str) -> str:
    return sh(f'docker compose exec -T postgres psql -U postgres -d synap -Atc "{sql}"').strip()


def curl(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def running_runs() -> int:
    query = '{"query": "query { runs(first: 100, filter: {from: \\"2020-01-01T00:00:00Z\\", status: [RUNNING]}) ' \
            '{ totalCount } }"}'
    request = urllib.request.Request(f"{INNGEST_URL}/v0/gql", data=query.encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]["runs"]["totalCount"]


def failures_seen_by_prometheus(share: float = 0.05) -> bool:
    """Whether Prometheus has scraped more than `share` of the API's requests failing over the last 5 s: what the
    alert that would start the run sees, and what the run's first look reads."""
    return _prometheus_figure('sum(rate(synap_http_requests_total{status_code=~"5.."}[5s])) '
                              '/ sum(rate(synap_http_requests_total[5s]))') > share


def latency_seen_by_prometheus(threshold: float = 0.5) -> bool:
    """Whether Prometheus sees the API's p95 over the last 5 s above `threshold` (the lab's synap_threshold_p95_seconds
    and metrics window): how slow a fault under load makes the API depends on how busy the machine is, so a
    rehearsal waits for the effect the scenario acts on rather than assume it."""
    return _prometheus_figure('histogram_quantile(0.95, sum by (le) '
                              '(rate(synap_http_request_duration_seconds_bucket{job="synap-api"}[5s])))') > threshold


def _prometheus_figure(query: str) -> float:
    """The query's one value; NaN when Prometheus answers nothing (which compares false with any bound)."""
    status, text = curl(f"{monitoring.PROMETHEUS_URL}/api/v1/query?" + urllib.parse.urlencode({"query": query}))
    result = json.loads(text)["data"]["result"] if status == 200 else []
    return float(result[0]["value"][1]) if result else float("nan")


def eventually(check, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{getattr(check, '__name__', 'the condition')}: not within {timeout} s"
        time.sleep(0.5)


class Load:
    """Real requests against the api for as long as a rehearsal runs (`synap-play lab load`)."""

    def __init__(self, rate: float):
        before = requests_served()
        started = time.monotonic()
        self.process = subprocess.Popen([*SYNAP_PLAY, "lab", "load", "--duration", "600", "--rate", str(rate)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # The API's own count shows the requests arriving; Synap's real backend as shipped counts none (5 s, then).
        eventually(lambda: requests_served() > before + 10 or self.process.poll() is not None
                   or (not before and time.monotonic() - started > 5 and not requests_served()), timeout=30)
        assert self.process.poll() is None, self.process.stderr.read()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def requests_served() -> float:
    metrics = curl(f"{API_URL}/metrics")[1]
    return sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("synap_http_requests_total{"))


def queue_depth() -> float:
    metrics = curl(f"{INNGEST_URL}/metrics")[1]
    return next(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("inngest_queue_depth"))


# -- each fault as plain commands see it, and the healthy lab ---------------------------------------------------------

def assert_healthy(stack: Lab) -> None:
    stack.wait_healthy()
    status, body = curl(f"{API_URL}/health")
    assert status == 200, body
    assert "faults: none" in cli("status")
    assert run_load(API_URL, 3, concurrency=2, rate=10).error_rate == 0


def observe_bad_deploy():
    assert "release 2026.11.3" in sh("git -C state/deploy log --oneline -10")
    result = run_load(API_URL, 5, concurrency=2, rate=20)
    assert result.error_rate > 0.05, result.summary()
    assert "KeyError" in sh("docker compose logs api --tail=100 | grep ERROR")


def observe_external_down():
    assert "hub" not in sh("docker compose ps --services --status running").split()
    status, body = curl(f"{API_URL}/api/search?workspace_id=00000000-0000-0000-0000-000000000000&q=x")
    assert status == 502 and "hub-protocol" in body


def observe_queue_backup():
    assert queue_depth() > 100


def observe_worker_stuck():
    eventually(lambda: running_runs() >= 4)
    time.sleep(2)
    assert running_runs() >= 4


def observe_db_slow():
    rows = psql("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep%' "
                "AND application_name = 'synap-reports'")
    assert int(rows) == 3


def observe_postgres_down():
    assert "postgres" not in sh("docker compose ps --services --status running").split()
    assert curl(f"{API_URL}/health")[0] == 503


def observe_connection_exhaustion():
    proc = subprocess.run(["psql", "postgresql://synap:lab-db-pass-7c41@127.0.0.1:25432/synap", "-c", "SELECT 1;"],
                          capture_output=True, text=True) if shutil.which("psql") else None
    if proc is not None:
        assert proc.returncode != 0 and "connection slots" in proc.stderr
    used = int(psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'synap-api'"))
    assert used >= 90
    assert curl(f"{API_URL}/health")[0] == 503


def observe_connection_leak():
    time.sleep(6)  # past the lab inventory's idle threshold (5 s)
    idle = psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'synap-jobs' AND state = 'idle' "
                "AND state_change < now() - interval '5 seconds'")
    assert int(idle) >= 10


def observe_latency():
    assert "entities_workspace_id_idx" not in psql("SELECT indexname FROM pg_indexes WHERE tablename = 'entities'")
    result = run_load(API_URL, 6, concurrency=4, rate=20)
    # A healthy lab answers in tens of milliseconds; with the fault p95 lands around the lab's 0.5 s threshold
    # (seen at 0.48 s on a busy machine), so the observation asks for clearly slow, not for the threshold itself.
    assert result.percentile(0.95) > 0.3, result.summary()


def observe_proposals_stuck():
    eventually(lambda: int(psql("SELECT count(*) FROM pg_locks WHERE NOT granted")) > 0)
    assert psql("SELECT state FROM pg_stat_activity WHERE application_name = 'synap-admin'") == "idle in transaction"


OBSERVATIONS = {
    "bad-deploy": observe_bad_deploy,
    "external-down": observe_external_down,
    "queue-backup": observe_queue_backup,
    "worker-stuck": observe_worker_stuck,
    "db-slow": observe_db_slow,
    "postgres-down": observe_postgres_down,
    "connection-exhaustion": observe_connection_exhaustion,
    "connection-leak": observe_connection_leak,
    "latency": observe_latency,
    "proposals-stuck": observe_proposals_stuck,
}



# What a run that changed nothing records for its mitigations: a branch not taken, or a gate that found no work.
NO_CHANGE_STATUSES = ("not needed", "nothing to do")


def assert_changed_nothing(record: dict) -> None:
    # Every scenario has mitigation tasks, run or skipped, so an empty list means the record lost them.
    assert record["actions"], record
    for action in record["actions"]:
        assert action["status"] in NO_CHANGE_STATUSES and action["changed"] is False, action


@dataclass
class Rehearsal:
    scenario: str
    faults: list[str]
    check: object
    expect: int | None = 0  # None: the exit code follows the verification (0 when every check passed, else 3)
    load: float = 0
    extra: list[str] = field(default_factory=list)
    wait_for: object = None  # a condition the fault must reach before the run (e.g. runs failing)
    settle: float = 0  # seconds for a time-based fault to pass the lab's thresholds (5 s stuck/idle, 3 s query)
    again_changes_nothing: bool = True
    # From the seed state (lab reset: down and up), or from the lab as the last rehearsal left it with every fault
    # cleared (lab clear: seconds instead of a minute and more, where a fresh database matters less than the time).
    fresh: bool = True


def rehearse(rehearsal: Rehearsal, incidents: Path, inventory: str = "lab") -> None:
    """Inject, run at P1 with --yes, check what the run left behind; then run again and see nothing change."""
    cli("reset" if rehearsal.fresh else "clear")
    load = Load(rehearsal.load) if rehearsal.load else None
    try:
        for fault in rehearsal.faults:
            cli("inject", fault)
        if rehearsal.wait_for:
            eventually(rehearsal.wait_for, timeout=120)
        time.sleep(rehearsal.settle)
        code, record = play(rehearsal.scenario, "--severity", "P1", "--yes", *rehearsal.extra, incidents=incidents,
                            inventory=inventory)
        expected = rehearsal.expect
        if expected is None:
            expected = 0 if record["verification"]["state"] == "resolved" else 3
        assert code == expected, json.dumps(record, indent=1)[:4000]
        record["_folder"] = str(incidents / record["id"])
        rehearsal.check(record)
        again_code, again = play(rehearsal.scenario, "--severity", "P1", "--yes", *rehearsal.extra,
                                 incidents=incidents, inventory=inventory)
        if rehearsal.again_changes_nothing:
            assert again_code == 0, json.dumps(again, indent=1)[:4000]
            assert_changed_nothing(again)
    finally:
        if load:
            load.stop()
