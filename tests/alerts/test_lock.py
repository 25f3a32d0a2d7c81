"""One mitigator at a time: two real concurrent holders against a real PostgreSQL, and the lock file when the
database is down. Holders are separate processes, so crash behaviour is the real kernel's and server's."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible_collections.synap.ops.plugins.plugin_utils.mitigator_lock import (
    LOCK_NAMESPACE,
    MitigatorBusy,
    describe_dsn,
    lock_key,
    lock_target,
    mitigator_lock,
)

HOLD = Path(__file__).resolve().parent / "hold_lock.py"
# Nothing listens here: a database that is down.
DOWN_DSN = "postgresql://synap:lock-test-secret@127.0.0.1:9/synap"


class Mitigator:
    """A holder process: started, it takes the lock (or exits 5); close() releases it, kill() crashes it."""

    def __init__(self, scenario, target, dsn, operator, incident_id, lock_dir, wait=0.0):
        self.proc = subprocess.Popen(
            [sys.executable, str(HOLD), scenario, target, dsn or "", operator, incident_id, str(lock_dir), str(wait)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def held(self, timeout=20) -> dict:
        line = self.proc.stdout.readline()
        assert line, f"holder did not take the lock: rc={self.proc.wait(timeout)} {self.proc.stderr.read()}"
        return json.loads(line)

    def refused(self, timeout=30) -> tuple[int, str]:
        rc = self.proc.wait(timeout)
        return rc, self.proc.stderr.read().strip()

    def close(self) -> int:
        self.proc.stdin.close()
        return self.proc.wait(20)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(20)


@pytest.fixture
def lock_dir(tmp_path):
    return tmp_path / "locks"


@pytest.fixture
def holders():
    started: list[Mitigator] = []

    def start(*args, **kwargs) -> Mitigator:
        started.append(Mitigator(*args, **kwargs))
        return started[-1]

    yield start
    for holder in started:
        if holder.proc.poll() is None:
            holder.kill()


HOLDER_MESSAGE = re.compile(
    r"another synap-play run is mitigating worker-queue-backup on (?P<target>\S+): operator alice on host \S+, "
    r"incident INC-A, since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(pid (?P<pid>\d+), (?P<where>[^)]+)\); "
    r"wait for it to finish, or run with --check to diagnose only")


def test_second_mitigator_is_refused_naming_the_holder_then_a_crash_frees_the_lock(pg, lock_dir, holders):
    dsn = pg.dsn(db="postgres")
    target = lock_target(dsn, "lab")
    first = holders("worker-queue-backup", target, dsn, "alice", "INC-A", lock_dir)
    assert first.held()["where"] == [f"file {lock_dir}/worker-queue-backup-{lock_key('worker-queue-backup', target):08x}"
                                     ".lock", f"postgresql {describe_dsn(dsn)}"]

    # Another machine has its own lock directory: only the database stands between the two.
    rc, message = holders("worker-queue-backup", target, dsn, "bob", "INC-B", lock_dir.with_name("other-host")).refused()
    assert rc == 5
    match = HOLDER_MESSAGE.fullmatch(message)
    assert match, message
    assert match["target"] == f"127.0.0.1:{pg.port}/postgres" and int(match["pid"]) == first.proc.pid
    assert match["where"].startswith("postgresql backend ")

    # Every operator sees the holder in pg_stat_activity.
    with pg.connect(db="postgres") as conn:
        [(application_name,)] = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE l.locktype = 'advisory' AND l.classid = %s", (LOCK_NAMESPACE,)).fetchall()
    assert application_name.startswith("synap-play lock alice@") and application_name.endswith(" INC-A")

    first.kill()  # a crashed holder: its connection closes, PostgreSQL drops the lock by itself
    third = holders("worker-queue-backup", target, dsn, "bob", "INC-C", lock_dir.with_name("other-host"), wait=10)
    assert third.held()["where"][-1] == f"postgresql {describe_dsn(dsn)}"
    assert third.close() == 0


def test_the_second_mitigator_can_wait_for_the_first(pg, lock_dir, holders):
    dsn = pg.dsn(db="postgres")
    first = holders("elevated-latency", "db", dsn, "alice", "INC-A", lock_dir)
    first.held()
    second = holders("elevated-latency", "db", dsn, "bob", "INC-B", lock_dir, wait=30)
    time.sleep(1.5)
    assert second.proc.poll() is None  # still waiting
    assert first.close() == 0
    assert second.held()["where"]
    assert second.close() == 0


def test_lock_file_alone_when_the_database_is_down(lock_dir, holders):
    target = lock_target(None, "lab", "api-1")
    assert target == "inventory lab (limit api-1)"
    first = holders("database-connection-failure", target, DOWN_DSN, "alice", "INC-A", lock_dir)
    assert [w.split()[0] for w in first.held()["where"]] == ["file"]
    rc, message = holders("database-connection-failure", target, DOWN_DSN, "bob", "INC-B", lock_dir).refused()
    assert rc == 5
    assert message.startswith("another synap-play run is mitigating database-connection-failure on inventory lab "
                              "(limit api-1): operator alice on host ")
    assert f"(pid {first.proc.pid}, lock file {lock_dir}/database-connection-failure-" in message
    assert "lock-test-secret" not in message
    first.kill()  # the kernel drops a dead process's flock
    third = holders("database-connection-failure", target, DOWN_DSN, "bob", "INC-C", lock_dir)
    assert third.held()
    assert third.close() == 0


def test_other_scenarios_and_targets_do_not_conflict_and_check_takes_nothing(pg, lock_dir, holders):
    dsn = pg.dsn(db="postgres")
    first = holders("worker-queue-backup", "db-a", dsn, "alice", "INC-A", lock_dir)
    first.held()
    with mitigator_lock("worker-queue-backup", "db-a", dsn=dsn, operator="bob", incident_id="INC-B", check=True,
                        lock_dir=lock_dir) as held:
        assert held is None
    for scenario, target in (("high-error-rate", "db-a"), ("worker-queue-backup", "db-b")):
        with mitigator_lock(scenario, target, dsn=dsn, operator="bob", incident_id="INC-B", lock_dir=lock_dir) as held:
            assert len(held.where) == 2
    with pytest.raises(MitigatorBusy) as busy, \
            mitigator_lock("worker-queue-backup", "db-a", dsn=dsn, operator="bob", incident_id="INC-B",
                           lock_dir=lock_dir):
        pass
    assert busy.value.holder.operator == "alice" and busy.value.holder.incident_id == "INC-A"
    assert busy.value.exit_code == 5
    assert first.close() == 0
