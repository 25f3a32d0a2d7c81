"""One stop path: SIGINT, SIGTERM and SIGHUP stop the playbook's whole process group, close the record as
interrupted with the task that was running, release the lock after the processes are gone, and exit 128+signal
within two seconds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from processes import playbook_processes

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


def start_slow_run(incidents_dir: Path) -> tuple[subprocess.Popen, str]:
    """Start fixture-slow and return it, with its private folder's name, once ansible-playbook is inside its long
    task (the private folder holds the task's start event)."""
    argv = [sys.executable, "-m", "synap_play", "fixture-slow", "-i", str(FIXTURES / "inventory" / "hosts.yml"),
            "--catalog", str(FIXTURES / "scenarios.yml"), "--incidents-dir", str(incidents_dir), "--no-first-look"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for folder in private_folders(incidents_dir):
            for event in folder.glob("artifacts/*/job_events/*.json"):
                try:
                    text = event.read_text(errors="replace")
                except OSError:  # a partial event file, renamed as we read it
                    continue
                if "playbook_on_task_start" in text and "Take a long time" in text:
                    time.sleep(0.5)
                    return proc, folder.name
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the playbook never reached its long task")


def private_folders(incidents_dir: Path) -> set[Path]:
    """The private folders of the runs recording into INCIDENTS_DIR, named by their incident ids: other tests' runs of
    fixture-slow alongside (pytest's other worker) have their own."""
    from synap_play.runner import PRIVATE_PREFIX, private_root

    incidents = [folder.name for folder in incidents_dir.iterdir()] if incidents_dir.is_dir() else []
    return {folder for incident in incidents for folder in private_root().glob(f"{PRIVATE_PREFIX}{incident}-*")}


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_a_stop_kills_the_playbook_and_closes_the_record(incidents_dir, signum, code):
    """Regression: SIGTERM left the record 'running' and ansible-playbook re-parented to pid 1 for 13 s more."""
    proc, private = start_slow_run(incidents_dir)
    try:
        assert playbook_processes(private), "the playbook is not running"
        sent = time.monotonic()
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    took = time.monotonic() - sent
    assert proc.returncode == code, stderr
    # About half a second on an idle machine (README); the bound only catches a stop that waits for the playbook.
    assert took < 10, f"exit {took:.1f} s after the signal"
    assert "Traceback" not in stderr
    assert playbook_processes(private) == []
    [folder] = list(incidents_dir.iterdir())
    record = json.loads((folder / "incident.json").read_text())
    assert record["status"] == "interrupted" and record["exit_code"] == code
    assert record["runner"]["running_task"] == "Assess | Take a long time"
    assert any("the run was stopped during 'Assess | Take a long time'" in e["event"] for e in record["timeline"])
    assert not any("stopped before running a task" in e["msg"] for e in record["errors"])
    assert (folder / "report.md").is_file()
    # The run's private folder (its inventory and variables) went with it.
    assert private_folders(incidents_dir) == set()


@pytest.mark.parametrize("where", ["private root", "temp folder"])
def test_a_private_folder_of_a_killed_run_is_swept_by_the_next(tmp_path, where):
    """Wherever the run kept it: in the memory-backed folder, or in the temp folder (a TMPDIR set for that run)."""
    from synap_play.runner import OWNER_FILE, PRIVATE_PREFIX, private_root, sweep_abandoned_private_folders

    root = private_root() if where == "private root" else Path(tempfile.gettempdir())
    child = subprocess.Popen(["true"])
    child.wait()
    abandoned = Path(tempfile.mkdtemp(prefix=f"{PRIVATE_PREFIX}test-", dir=root))
    (abandoned / OWNER_FILE).write_text(str(child.pid))
    alive = Path(tempfile.mkdtemp(prefix=f"{PRIVATE_PREFIX}test-", dir=root))
    (alive / OWNER_FILE).write_text(str(os.getppid()))
    try:
        sweep_abandoned_private_folders()
        assert not abandoned.exists()
        assert alive.exists()
    finally:
        for folder in (abandoned, alive):
            subprocess.run(["rm", "-rf", str(folder)], check=False)


def test_the_private_folder_is_in_memory_only_with_room_and_no_tmpdir_set(monkeypatch, tmp_path):
    """ansible-runner writes a file per event in it: in memory where there is room to spare; a TMPDIR the operator
    set wins; a memory folder that is missing or short of room leaves it in the temp folder."""
    from synap_play import runner

    monkeypatch.delenv("TMPDIR", raising=False)
    monkeypatch.setattr(runner, "MEMORY_FOLDER", tmp_path)
    monkeypatch.setattr(runner, "MEMORY_FOLDER_MIN_FREE", 1)
    assert runner.private_root() == tmp_path
    monkeypatch.setattr(runner, "MEMORY_FOLDER_MIN_FREE", 1 << 62)
    assert runner.private_root() == Path(tempfile.gettempdir())
    monkeypatch.setattr(runner, "MEMORY_FOLDER_MIN_FREE", 1)
    monkeypatch.setattr(runner, "MEMORY_FOLDER", tmp_path / "missing")
    assert runner.private_root() == Path(tempfile.gettempdir())
    monkeypatch.setattr(runner, "MEMORY_FOLDER", tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "chosen"))
    assert runner.private_root() == Path(tempfile.gettempdir())


def test_the_first_look_imports_its_modules_before_its_threads(monkeypatch, tmp_path):
    """Regression: a first-look thread and another importing psycopg at once found it half initialised
    ("cannot import name 'conninfo_attempts' from partially initialized module"): imports come first, in one thread."""
    import importlib
    import threading

    from synap_play import first_look

    imported = []
    real_import = importlib.import_module

    def recording_import(name, *args):
        imported.append((threading.current_thread().name, name))
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", recording_import)
    from ansible_collections.synap.ops.plugins.module_utils import info_modules

    monkeypatch.setattr(info_modules, "look_up", lambda module, args: {"msg": "answered"})
    look = first_look.FirstLook(tmp_path, on_answer=lambda *answer: None)
    look._run([first_look.LookUp("h", "db", "synap.ops.postgres_activity_info", {}),
               first_look.LookUp("h", "q", "synap.ops.inngest_info", {})])
    assert sorted(name for _thread, name in imported) == [
        "ansible_collections.synap.ops.plugins.module_utils.inngest_info",
        "ansible_collections.synap.ops.plugins.module_utils.postgres_activity_info"]
    # One thread imports them all, before any look-up thread starts.
    assert len({thread for thread, _name in imported}) == 1
    assert not any(thread.startswith("look-up") for thread, _name in imported)
    assert look.seconds is not None
