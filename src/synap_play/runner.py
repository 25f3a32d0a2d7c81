"""The only place that talks to ansible-runner.

Everything else gets a PlaybookRun back. Each run has a fresh private data dir; its artifacts are copied,
redacted, into the incident folder afterwards, and the private dir is removed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synap_play.project import collections_path, project_root

PRIVATE_PREFIX = "synap-play-run-"
OWNER_FILE = "owner.pid"
CANCEL_POLL_SECONDS = 0.25
# A memory-backed folder for the private folders, used when it has room to spare: see private_root().
MEMORY_FOLDER = Path("/dev/shm")
MEMORY_FOLDER_MIN_FREE = 512 * 1024 * 1024


@dataclass
class PlaybookRun:
    status: str  # successful | failed | timeout | canceled
    rc: int | None


def run_playbook(
    *,
    playbook: Path,
    inventory: Path,
    extravars: dict[str, Any],
    ident: str,
    artifacts_to: Path,
    redact_text: Callable[[str], str],
    check: bool = False,
    limit: str | None = None,
    verbosity: int = 0,
    event_handler: Callable[[dict], bool] | None = None,
    cancel_callback: Callable[[], bool] | None = None,
    envvars: dict[str, str] | None = None,
    strategy: str = "linear",
) -> PlaybookRun:
    import ansible_runner  # imported here so `synap-play --help` stays fast

    root = project_root()
    # ansible-playbook lives beside the interpreter running us (a venv need not be on PATH).
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    sweep_abandoned_private_folders()
    private = Path(tempfile.mkdtemp(prefix=f"{PRIVATE_PREFIX}{ident}-", dir=private_root()))
    (private / OWNER_FILE).write_text(str(os.getpid()), encoding="utf-8")
    # Extra variables go to the run's private folder (0700), never on ansible-playbook's command line: an
    # Alertmanager group of thousands of alerts would not fit there, and any user on the host can read argv.
    (private / "env").mkdir()
    extravars_file = private / "env" / "extravars"
    extravars_file.write_text(json.dumps(extravars, default=str), encoding="utf-8")
    os.chmod(extravars_file, 0o600)
    # ansible-runner reads its settings from this file only (a settings= argument is dropped when it is missing).
    # pexpect_timeout is how often the runner asks cancel_callback: a stop (stopping.py) takes effect within it.
    (private / "env" / "settings").write_text(json.dumps(
        {"suppress_ansible_output": True, "pexpect_timeout": CANCEL_POLL_SECONDS}), encoding="utf-8")
    cmdline = []
    if check:
        cmdline.append("--check")
    env = {
        "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(collections_path(root)),
        "ANSIBLE_ROLES_PATH": str(root / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        **(envvars or {}),
        **strategy_env(strategy),
    }
    try:
        result = ansible_runner.run(
            private_data_dir=str(private),
            project_dir=str(root),
            playbook=str(playbook),
            inventory=str(inventory),
            ident=ident,
            limit=limit,
            verbosity=verbosity or None,
            cmdline=" ".join(cmdline) or None,
            envvars=env,
            event_handler=event_handler,
            cancel_callback=cancel_callback,
            suppress_env_files=True,
            quiet=True,
        )
        return PlaybookRun(status=result.status, rc=result.rc)
    finally:
        _keep_artifacts(private / "artifacts" / ident, artifacts_to, redact_text)
        shutil.rmtree(private, ignore_errors=True)


def private_root() -> Path:
    """Where a run's private folder goes. ansible-runner's event callback writes a file per event there, which the
    runner reads, removes and writes again: at a fleet's size thousands of files, and on a disk each creation
    waits for its journal (about 1 ms, a quarter of that in memory: at 50 hosts ansible-playbook's creations took
    1.2 s on the disk, 0.3 s in memory). So a
    memory-backed folder with room to spare is used; the folder is removed when the run ends, its artifacts kept
    in the incident folder. A TMPDIR the operator set is theirs to choose and is used as it is."""
    if not os.environ.get("TMPDIR") and _has_room(MEMORY_FOLDER):
        return MEMORY_FOLDER
    return Path(tempfile.gettempdir())


def _has_room(folder: Path) -> bool:
    try:
        stat = os.statvfs(folder)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK) and stat.f_bavail * stat.f_frsize >= MEMORY_FOLDER_MIN_FREE


def sweep_abandoned_private_folders() -> None:
    """Remove the private folders (inventory and variables of a run) of runs whose process is gone: killed with
    SIGKILL, or by a machine that lost power, a run cannot clean up after itself."""
    roots = {private_root(), Path(tempfile.gettempdir())}
    for folder in (folder for root in roots for folder in root.glob(f"{PRIVATE_PREFIX}*")):
        try:
            owner = int((folder / OWNER_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not one of ours, or not yet written
        if owner != os.getpid() and not _alive(owner):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to judge
        return True
    return True


def mitogen_strategy_dir() -> Path | None:
    """The mitogen strategy plugins' folder, or None when mitogen (pip install 'synap-play[speed]') is absent."""
    try:
        import ansible_mitogen
    except ImportError:
        return None
    folder = Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"
    return folder if folder.is_dir() else None


def strategy_env(strategy: str) -> dict[str, str]:
    """Ansible's settings for the chosen play strategy; the CLI has already fallen back when mitogen is absent."""
    folder = mitogen_strategy_dir() if strategy == "mitogen" else None
    if folder is None:
        return {}
    return {"ANSIBLE_STRATEGY_PLUGINS": str(folder), "ANSIBLE_STRATEGY": "mitogen_linear"}


def _keep_artifacts(source: Path, destination: Path, redact_text: Callable[[str], str]) -> None:
    """Copy the run's artifacts with every secret masked; binary or unreadable files are skipped."""
    if not source.is_dir():
        return
    for path in sorted(source.rglob("*")):
        if not path.is_file():
            continue
        target = destination / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        target.write_text(redact_text(text), encoding="utf-8")
        os.chmod(target, 0o600)
