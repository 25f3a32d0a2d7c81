"""Which processes are still alive: a stopped run must leave no ansible-playbook or worker behind."""

from __future__ import annotations

import os
from pathlib import Path


def playbook_processes(marker: str) -> list[str]:
    """Command lines of live processes that mention ``marker`` (the run's playbook or private folder), this test
    process and pytest's own left out."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and "pytest" not in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found
