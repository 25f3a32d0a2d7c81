"""Evidence rules on the real lab: a run waits only when a mitigation changed something, a declined step decides
the steps that depend on it, the outcome is the verification's, and a query that only waits on a lock is never
ended as a long-running query.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pexpect
import pytest
from labtools import ROOT, cli, curl, eventually, psql
from test_rehearsals import SYNAP_PLAY, play

from synap_play.lab.access import API_URL

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]

VERIFY_TIMEOUT = 60  # synap_verify_timeout_seconds of inventory/lab
API_RESTART = "Restart the API to release its connections"
RAISE = "Raise max_connections"
RESTART_POSTGRES = "Restart PostgreSQL so the new max_connections takes effect"


def action(record: dict, task: str) -> dict:
    [found] = [a for a in record["actions"] if task in a["task"]]
    return found


class Operator:
    """synap-play on a terminal (a pty), as an operator runs it: each approval it asks for is answered from
    ``answers`` (task name fragment -> yes/no; anything else is approved)."""

    def __init__(self, tmp_path: Path, answers: dict[str, bool]):
        self.tmp = tmp_path / "tmp"  # synap-play's approval folder is made here (TMPDIR)
        self.tmp.mkdir()
        self.answers = answers
        self.asked: list[tuple[str, bool]] = []

    def run(self, scenario: str, *args: str, incidents: Path) -> tuple[int, dict]:
        # Module-scoped: conftest's per-test lock and cache folders are not set yet, so this run gets its own.
        env = dict(os.environ, TMPDIR=str(self.tmp), NO_COLOR="1", COLUMNS="200",
                   SYNAP_PLAY_LOCK_DIR=str(self.tmp / "locks"), SYNAP_PLAY_CACHE_DIR=str(self.tmp / "cache"))
        child = pexpect.spawn(SYNAP_PLAY[0], [*SYNAP_PLAY[1:], scenario, "-i", "lab", "--incidents-dir",
                                              str(incidents), *args],
                              cwd=str(ROOT), env=env, encoding="utf-8", timeout=300, dimensions=(50, 200))
        transcript = []
        try:
            while child.expect([r"Run it\? \[y/N\]", pexpect.EOF]) == 0:
                transcript.append(child.before)
                [request] = [p for p in self.tmp.glob("synap-play-approvals-*/*.request.json")
                             if not p.with_name(p.name.replace(".request.json", ".answer.json")).exists()]
                task = json.loads(request.read_text())["task"]
                approve = next((yes for fragment, yes in self.answers.items() if fragment in task), True)
                self.asked.append((task, approve))
                child.sendline("y" if approve else "n")
            transcript.append(child.before)
        finally:
            child.close()
        [folder] = [p for p in incidents.iterdir() if (p / "incident.json").is_file()]
        record = json.loads((folder / "incident.json").read_text())
        assert child.exitstatus == record["exit_code"], "".join(transcript)[-3000:]
        return child.exitstatus, record


def test_waiting_for_nothing(incidents_dir):
    """Connection exhaustion at P1 with nobody at a terminal: every mitigation needs approval, nothing changes,
    so the verification measures once instead of polling for synap_verify_timeout_seconds."""
    cli("reset")
    cli("inject", "connection-exhaustion")
    max_connections = psql("SHOW max_connections")
    code, record = play("database-connection-failure", "--severity", "P1", incidents=incidents_dir)
    summary = json.dumps(record, indent=1)[:4000]
    assert (code, record["status"]) == (3, "needs approval"), summary
    wanted = [a for a in record["actions"] if a["status"] != "not needed"]
    assert [a["task"] for a in wanted] and all(a["status"] == "needs approval" for a in wanted), record["actions"]
    assert any(API_RESTART in a["task"] for a in wanted) and any(RAISE in a["task"] for a in wanted)
    assert action(record, RESTART_POSTGRES)["status"] == "not needed"
    assert not any(a["changed"] for a in record["actions"])
    assert record["verification"]["state"] == "unresolved"
    assert psql("SHOW max_connections") == max_connections
    assert record["duration_seconds"] < 30 < VERIFY_TIMEOUT, record["duration_seconds"]


@pytest.fixture(scope="module")
def declined_raise(tmp_path_factory):
    """Connection exhaustion at P1 on a terminal: the API restart approved, the max_connections raise declined."""
    tmp_path = tmp_path_factory.mktemp("declined-raise")
    cli("reset")
    cli("inject", "connection-exhaustion")
    before = psql("SHOW max_connections")
    operator = Operator(tmp_path, {RAISE: False})
    incidents = tmp_path / "incidents"
    code, record = operator.run("database-connection-failure", "--severity", "P1", incidents=incidents)
    return code, record, operator.asked, (before, psql("SHOW max_connections"))


def test_a_declined_step_still_drives_the_next_one(declined_raise):
    """Declining the raise means no restart to apply it: that step is neither asked nor run."""
    code, record, asked, max_connections = declined_raise
    assert [(task.split(" : ")[-1], yes) for task, yes in asked] == [
        ("Mitigate | Restart the API to release its connections (pool exhausted)", True),
        ("Mitigate | Raise max_connections (pool exhausted, temporary)", False)], asked
    restart = action(record, RESTART_POSTGRES)
    assert restart["status"] == "not needed" and not restart["changed"], restart
    before, after = max_connections
    assert after == before, "the declined raise changed max_connections"


def test_resolved_yet_a_step_declined_exits_0(declined_raise):
    """The API restart brought the headroom back: the verification passes, so the run is resolved (exit 0), and
    the declined raise stays on the record as declined."""
    code, record, _, _ = declined_raise
    assert (code, record["status"]) == (0, "resolved"), json.dumps(record, indent=1)[:4000]
    assert record["verification"]["state"] == "resolved"
    assert action(record, API_RESTART)["status"] == "done" and action(record, API_RESTART)["changed"]
    raise_ = action(record, RAISE)
    assert raise_["status"] == "declined" and not raise_["changed"] and raise_["plan"], raise_
    assert curl(f"{API_URL}/health")[0] == 200


def test_lock_victims_are_not_ended_as_long_queries(incidents_dir):
    """proposals-stuck: the validator's queries wait on the admin script's row locks for longer than the long-query
    threshold. They are victims: worker-queue-backup's long-query branches must not select them."""
    cli("reset")
    cli("inject", "proposals-stuck")
    waiting = ("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'synap-jobs' AND state = 'active' "
               "AND wait_event_type = 'Lock' AND now() - query_start > interval '4 seconds'")
    eventually(lambda: int(psql(waiting) or 0) > 0, timeout=60)
    code, record = play("worker-queue-backup", "--severity", "P1", "--check", incidents=incidents_dir)
    [db] = [f for f in record["findings"] if f.get("look_up") == "db" and "Assess" in f["task"]]
    victims = [q for q in db["details"]["long_queries"] if q["blocked_by"]]
    # The situation the branch must resist was there: a service query over the threshold, waiting on a lock.
    assert any(q["application_name"] == "synap-jobs" for q in victims), db["details"]["long_queries"]
    for task in ("End the service's own long-running queries", "End other long-running queries"):
        assert action(record, task)["status"] == "not needed", record["actions"]
    assert not any(a["changed"] for a in record["actions"])
