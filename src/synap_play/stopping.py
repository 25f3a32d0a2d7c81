"""One way to stop a run, whatever asks: Ctrl-C (SIGINT), SIGTERM (systemd, docker stop, CI, AWX cancel), SIGHUP.

The first signal while the playbook runs only asks for a stop: the runner's cancel callback sees it within a
quarter of a second and ends every process of the run (ansible-playbook runs in a session of its own and its
workers in sessions of theirs, so no signal reaches them otherwise): the same signal first, SIGKILL after a grace
second. Then the record is closed as interrupted and the lock is released, in that order. A signal before or after
the playbook, or a second one, unwinds at once, ending the processes first. The exit code is 128 + the signal's
number (130, 143, 129).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_SECONDS = 1.0  # how long the playbook's processes get to end on the signal before they are killed
SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


class StopRequested(KeyboardInterrupt):
    """Raised where a stop must unwind at once; a KeyboardInterrupt, so every existing clean-up path applies."""


class StopSignals:
    """Installs the handlers for its ``with`` block (main thread only) and remembers the first signal."""

    def __init__(self, announce: Callable[[str], None] | None = None):
        self.signum: int | None = None
        self.playbook_running = False
        self._announce = announce
        self._previous: dict[int, object] = {}
        self._killed = False

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)

    @property
    def name(self) -> str:
        return SIGNAL_NAMES.get(self.signum or signal.SIGINT, f"signal {self.signum}")

    def interrupt(self, signum: int = signal.SIGINT) -> None:
        """A stop asked for from inside the process (a KeyboardInterrupt that reached the run)."""
        if self.signum is None:
            self.signum = signum

    def _handle(self, signum, frame) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        if first and self.playbook_running:
            if self._announce:
                self._announce(f"{SIGNAL_NAMES.get(signum, signum)}: stopping the playbook and writing the record "
                               "(again to stop at once)")
            return
        self.kill_playbook()
        raise StopRequested

    def cancel_playbook(self) -> bool:
        """The runner's cancel callback: once a stop is asked for, end the playbook's processes and say so."""
        if self.signum is None:
            return False
        self.kill_playbook()
        return True

    def kill_playbook(self) -> None:
        """End every process this run started (ansible-playbook, its workers, the modules they run), once.

        ansible-playbook's workers call setsid(), so killing its process group leaves them running the task on
        their own; the whole tree of our descendants is found first, then signalled, then killed.
        """
        if self._killed:
            return
        self._killed = True
        tree = descendants(os.getpid())
        if not tree:
            return
        gentle = self.signum if self.signum in (signal.SIGTERM, signal.SIGINT) else signal.SIGTERM
        for pid in tree:
            with contextlib.suppress(OSError):
                os.kill(pid, gentle)
        deadline = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < deadline and any(_alive(pid) for pid in tree):
            time.sleep(0.05)
        for pid in tree:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def descendants(root: int) -> list[int]:
    """Every live descendant of ``root``, parents before children, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields after its closing parenthesis are fixed.
        fields = stat[stat.rindex(")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, queue = [], list(children.get(root, []))
    while queue:
        pid = queue.pop(0)
        found.append(pid)
        queue.extend(children.get(pid, []))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False
