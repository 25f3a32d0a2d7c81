"""Plain-command views of the rehearsal lab, shared by the lab tests and the scenario rehearsals: what an
operator would type (docker compose, psql, curl), so the tests see the lab's real state, not synap-play's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from click.testing import CliRunner

from synap_play.lab import monitoring
from synap_play.lab.cli import lab
from synap_play.lab.stack import API_URL, INNGEST_URL
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
    query = ('sum(rate(synap_http_requests_total{status_code=~"5.."}[5s])) '
             '/ sum(rate(synap_http_requests_total[5s]))')
    status, text = curl(f"{monitoring.PROMETHEUS_URL}/api/v1/query?" + urllib.parse.urlencode({"query": query}))
    result = json.loads(text)["data"]["result"] if status == 200 else []
    return bool(result) and float(result[0]["value"][1]) > share


def eventually(check, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
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
