"""Two real concurrent `synap-play run`s of one scenario against one target (a real PostgreSQL holds the lock):
the second is refused with exit 5 naming the holder, --check is never refused, and a crashed holder frees it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from alert_helpers import CATALOG, INVENTORY

from synap_play.stopping import descendants


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, SYNAP_PLAY_LOCK_DIR=str(tmp_path / "locks"), USER="tester")


@pytest.fixture
def inventory(tmp_path, pg):
    document = yaml.safe_load(INVENTORY.read_text())
    document["synap"]["vars"]["synap_database_url"] = pg.dsn(db="postgres")
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def start(inventory, incidents, env, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "synap_play", "run", "fixture-slow", "-i", str(inventory), "--catalog", str(CATALOG),
         "--incidents-dir", str(incidents), *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_holder(pg, deadline=60, operator=""):
    """Until a synap-play lock connection (of ``operator``, when given) shows up in pg_stat_activity; returns its
    application_name."""
    end = time.monotonic() + deadline
    with pg.connect(db="postgres") as conn:
        while time.monotonic() < end:
            row = conn.execute("SELECT application_name FROM pg_stat_activity"
                               " WHERE application_name LIKE %s", (f"synap-play lock {operator}%",)).fetchone()
            if row:
                return row[0]
            time.sleep(0.3)
    raise AssertionError("the first run never took the lock")


def stop(proc, sig=signal.SIGINT):
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@pytest.mark.slow
def test_second_concurrent_run_is_refused_naming_the_holder(tmp_path, pg, inventory, env):
    incidents = tmp_path / "incidents"
    first = start(inventory, incidents, env, "--operator", "alice")
    others = []
    try:
        assert wait_for_holder(pg).startswith("synap-play lock alice@")
        # --wait-lock 0 (the default, named): refused at once.
        second = start(inventory, incidents, env, "--operator", "bob", "--wait-lock", "0", "--output", "json")
        others.append(second)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 5, err
        record = json.loads(out)
        assert record["status"] == "locked out" and record["exit_code"] == 5
        holder = record["lock"]["holder"]
        first_id = next(p.name for p in incidents.iterdir() if p.name != record["id"])
        # The lock is held inside the first run's ansible-playbook (the incident callback): a process of that run.
        assert (holder["operator"], holder["incident_id"]) == ("alice", first_id)
        assert holder["pid"] in descendants(first.pid)
        assert record["lock"]["target"] == f"127.0.0.1:{pg.port}/postgres"

        text = start(inventory, incidents, env, "--operator", "carol")
        others.append(text)
        err = text.communicate(timeout=60)[1]
        assert text.returncode == 5
        assert err.strip().startswith(f"synap-play: another synap-play run is mitigating fixture-slow on "
                                      f"127.0.0.1:{pg.port}/postgres: operator alice on host ")
        assert f"incident {first_id}, since " in err

        # Diagnosis never needs the lock: it runs to its end while alice holds it (the slow task skips in check mode).
        diagnosis = start(inventory, incidents, env, "--operator", "dave", "--check")
        others.append(diagnosis)
        err = diagnosis.communicate(timeout=120)[1]
        assert diagnosis.returncode == 0, err

        # A crashed run: the server and the kernel drop its locks once none of its processes is left. The lock is
        # held by the run's ansible-playbook, and its workers share the connection while they run a task.
        crashed = descendants(first.pid)
        stop(first, signal.SIGKILL)
        for pid in crashed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        third = start(inventory, incidents, env, "--operator", "erin")
        others.append(third)
        assert wait_for_holder(pg, operator="erin").startswith("synap-play lock erin@")
        stop(third)
        assert third.returncode == 130
    finally:
        for proc in [first, *others]:
            stop(proc, signal.SIGKILL)
