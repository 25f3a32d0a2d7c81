# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing a file that changes with every task result, at a pace its size allows.

The incident record is rewritten as the run goes, so that a reader (the incident page, an operator's `cat`, a run
killed without warning) finds it current. A fleet's record grows with every host, and writing all of it after
each of a 50-host run's thousand results made the run quadratic: most of its time went to writing. Here a change
is written at once when the last write is long enough ago, and otherwise at most nineteen writes' time later by a
timer, so writing takes no more than a twentieth of the run however large the record grows (at a tenth it was still
a tenth of a 50-host run's controller, the one process that also hands every host its tasks).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# After a write that took d seconds the next waits until 19 d have passed: writing is at most a twentieth of the time.
PAUSE_PER_WRITE_SECOND = 19.0


class PacedWriter:
    """Calls WRITE when told something changed, paced by how long writing takes. Whoever changes what WRITE
    writes holds LOCK while changing it, as the timer's write does."""

    def __init__(self, write: Callable[[], None]):
        self.lock = threading.RLock()
        self._write = write
        self._next_at = 0.0
        self._pending = False
        self._timer: threading.Timer | None = None

    def changed(self) -> None:
        with self.lock:
            self._pending = True
            wait = self._next_at - time.monotonic()
            if wait <= 0:
                self._write_now()
            elif self._timer is None:
                self._timer = threading.Timer(wait, self._on_timer)
                self._timer.daemon = True  # never keeps ansible-playbook alive; its end flushes
                self._timer.start()

    def flush(self) -> None:
        """Write now, whatever the pace, and stop the timer: the last word, or a change that must be on disk."""
        with self.lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._write_now()

    def _on_timer(self) -> None:
        with self.lock:
            self._timer = None
            if self._pending:
                self._write_now()

    def _write_now(self) -> None:
        started = time.monotonic()
        self._pending = False
        self._write()
        ended = time.monotonic()
        self._next_at = ended + (ended - started) * PAUSE_PER_WRITE_SECOND
