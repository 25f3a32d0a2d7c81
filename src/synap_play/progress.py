"""Live progress on the operator's terminal: task, host, counts, elapsed time, findings as they land."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from synap_play import collection

collection.load()

from ansible_collections.synap.ops.plugins.plugin_utils.incident_events import diagnose_sources
from ansible_collections.synap.ops.plugins.plugin_utils.incident_report import strip_control

_MARK = {"runner_on_ok": ("ok", "green"), "runner_on_failed": ("failed", "red"),
         "runner_on_skipped": ("skipped", "dim"), "runner_on_unreachable": ("unreachable", "red")}


def markup_safe(value: Any) -> str:
    """Free text for a string printed with rich markup on: one line without control characters (strip_control),
    and its brackets shown, not read as styles."""
    return escape(strip_control(value))


class Progress:
    def __init__(self, console: Console, title: str, verbose: int = 0, redact=lambda text: text,
                 started: float | None = None):
        self.console = console
        self.redact = redact
        self.title = title
        self.verbose = verbose
        self.started = time.monotonic() if started is None else started  # the incident run's start
        self.task = ""
        self.host = ""
        self.counts = {"ok": 0, "changed": 0, "skipped": 0, "failed": 0}
        self._lock = threading.RLock()
        self._live = Live(self._render(), console=console, refresh_per_second=8, transient=True)

    def __enter__(self) -> Progress:
        self._live.start()
        return self

    def _show_title(self) -> None:
        """The title, once the playbook runs its first task: a run refused before it (another mitigator holds the
        lock) prints only the refusal."""
        if self.title:
            self.console.print(Text(self.title, style="bold"))
            self.title = ""

    def __exit__(self, *exc: Any) -> None:
        self._live.stop()

    @contextmanager
    def paused(self):
        """Stop the live line while the operator is asked something."""
        with self._lock:
            self._live.stop()
            try:
                yield
            finally:
                self._live.start()

    def _render(self) -> Text:
        elapsed = time.monotonic() - self.started
        counts = " ".join(f"{k} {v}" for k, v in self.counts.items())
        # The task's name says its phase ("Assess | ..."); the record takes phases from the tasks' tags.
        return Text.assemble((f"{elapsed:6.1f}s ", "cyan"), (f"{self.task[:72]} ", "bold"),
                             (f"[{self.host}] " if self.host else "", "dim"), (counts, "dim"))

    def handle(self, event: dict[str, Any]) -> None:
        with self._lock:
            kind = event.get("event")
            data = event.get("event_data") or {}
            if kind == "playbook_on_task_start":
                self._show_title()
                self.task = data.get("task") or ""
            elif kind in _MARK:
                self._result(kind, data)
            elif kind == "verbose" and self.verbose and event.get("stdout"):
                self.console.print(Text(self.redact(event["stdout"]), style="dim"))
            self._live.update(self._render())

    def _result(self, kind: str, data: dict[str, Any]) -> None:
        label, style = _MARK[kind]
        result = data.get("res") or {}
        self.host = data.get("host") or ""
        if kind == "runner_on_ok" and result.get("changed"):
            self.counts["changed"] += 1
        elif kind == "runner_on_unreachable":
            self.counts["failed"] += 1
        else:
            self.counts[label] += 1
        action = data.get("resolved_action") or ""
        message = self.redact(result.get("msg")) if isinstance(result.get("msg"), str) else ""
        worth_a_line = kind in ("runner_on_failed", "runner_on_unreachable") or (
            kind == "runner_on_ok" and action.startswith("synap.ops.") and message)
        if not worth_a_line and not self.verbose:
            return
        if action.endswith("synap.ops.diagnose") and result.get("sources"):
            # One line per source, as each module's own task would have printed it.
            for name, source, _ in diagnose_sources(result):
                failed = bool(source.get("failed"))
                # A source that could not be read is said so plainly: its checks will be unknown, never passing.
                unread = not failed and source.get("reachable") is False
                label, style = ("failed", "red") if failed else ("not read", "yellow") if unread else ("ok", "green")
                self.line(label, style, self.host, name, self.redact(str(source.get("msg") or "")))
            return
        self.line(label, style, self.host, data.get("task") or action, message or "", bold=kind != "runner_on_ok")

    def line(self, label: str, style: str, host: str, what: str, message: str, *, bold: bool = False) -> None:
        """One result on its own line above the live status.
        Host, task and message are free text: whatever control they carry is stripped, not sent to the terminal."""
        with self._lock:
            elapsed = time.monotonic() - self.started
            self.console.print(Text.assemble((f"{elapsed:6.1f}s ", "cyan"), (f"{label:<11}", style),
                                             (f"[{strip_control(host)}] " if host else "", "dim"), f"{strip_control(what)}: ",
                                             (strip_control(message), "bold" if bold else "")))
