"""A scenario run as AWX runs it (ansible-runner, the project as --project-dir) against the lab's real fault keeps
the record, the report and the mitigator lock, like synap-play does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from labtools import cli, psql

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.usefixtures("lab")]


def test_worker_stuck_run_by_ansible_runner_is_documented_and_locked(tmp_path):
    cli("inject", "worker-stuck")
    time.sleep(6)  # the hung runs become stuck (older than the lab's 5 s threshold), as in the rehearsal
    private = tmp_path / "job"
    seen_holders: list[str] = []
    done = threading.Event()

    def watch_the_lock():  # the holder is visible to every operator in pg_stat_activity while the job runs
        while not done.wait(0.5):
            names = psql("SELECT string_agg(application_name, ',') FROM pg_stat_activity "
                         "WHERE application_name LIKE 'synap-play lock %'")
            if names.strip():
                seen_holders.append(names.strip())

    watcher = threading.Thread(target=watch_the_lock, daemon=True)
    watcher.start()
    try:
        job = subprocess.run([str(BIN / "ansible-runner"), "run", str(private), "--project-dir", str(ROOT), "-p",
                              "playbooks/worker-queue-backup.yml", "--inventory", str(ROOT / "inventory" / "lab"),
                              "--ident", "awx-job", "--cmdline", "-e incident_severity=P1 -e incident_approve=true"],
                             cwd=ROOT, capture_output=True, text=True, timeout=600,
                             env=dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}"))
    finally:
        done.set()
        watcher.join()
    assert job.returncode == 0, job.stdout[-3000:]
    folders = list((private / "artifacts" / "awx-job" / "incidents").iterdir())
    assert len(folders) == 1
    record = json.loads((folders[0] / "incident.json").read_text())
    assert record["scenario"] == "worker-queue-backup" and record["title"] == "Worker Queue Backup"
    assert record["severity"] == "P1" and record["status"] == "resolved" and record["exit_code"] == 0
    restarts = [a for a in record["actions"] if a["status"] == "done" and a["changed"]]
    assert restarts and restarts[0]["class"] == "disruptive"
    assert [p["name"] for p in record["phases"]][0] == "Acknowledge" and record["phases"][-1]["name"] == "Document"
    assert any(where.startswith("postgresql ") for where in record["lock"]["where"])
    assert seen_holders and record["id"][:16] in seen_holders[0]  # application_name holds 63 characters
    assert "Worker Queue Backup" in (folders[0] / "report.md").read_text()
