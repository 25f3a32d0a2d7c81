"""What the operator sees while a run works: the title, the first look's answers, then the live progress."""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from typing import Any

from synap_play import collection

collection.load()

from ansible_collections.synap.ops.plugins.plugin_utils.protocol import PLAN_DIR_ENV

from synap_play.run_request import RunRequest


class LiveView:
    """Shared by the main thread, the runner's event thread and the first look's threads; once the outcome is
    about to be shown (``close``), nothing else is printed."""

    def __init__(self, request: RunRequest, redact_text, began: float):
        self.request = request
        self.redact_text = redact_text
        self.began = began
        self.lock = threading.RLock()
        self.progress = None
        self.title_shown = False
        self.closed = False
        self.running_task: str | None = None  # what a stop interrupts, as the runner's events tell it
        # What ansible-playbook said outside its callback (an error before its first play), as the runner's
        # "verbose" events carry it: the cause of a run that never reached a task.
        self.last_output: deque[str] = deque(maxlen=5)
        # Its first error line: ansible-core can follow it with more lines of context than the tail keeps.
        self.first_error: str | None = None

    def announce(self, text: str) -> None:
        if not self.request.quiet and not self.closed:
            print(f"synap-play: {text}", file=sys.stderr, flush=True)

    def title(self, incident_id: str) -> None:
        if not self.request.quiet and not self.title_shown:
            print(self.request.title(incident_id), file=sys.stderr, flush=True)
            self.title_shown = True

    def close(self) -> None:
        with self.lock:
            self.closed = True

    def on_event(self, event: dict[str, Any]) -> bool:
        """ansible-runner's event handler: the live display, and the task a stop would interrupt."""
        with self.lock:
            if event.get("event") == "playbook_on_task_start":
                self.running_task = (event.get("event_data") or {}).get("task")
            elif event.get("event") == "verbose" and str(event.get("stdout") or "").strip():
                text = self.redact_text(str(event["stdout"]))
                self.last_output.append(text)
                if self.first_error is None and "ERROR" in text:
                    self.first_error = text
            if self.progress is not None:
                self.progress.handle(event)
        return True

    def plan_env(self) -> dict[str, str]:
        """Where the playbook keeps this run's look-up plan for the next run's first look ({} when it cannot)."""
        from synap_play.first_look import plan_folder

        request = self.request
        try:
            return {PLAN_DIR_ENV: str(plan_folder(request.scenario.name, request.inventory, request.limit,
                                                  dict(request.extravars)))}
        except OSError:
            return {}

    def start_first_look(self, record, stop):
        """The scenario's kept look-ups, answered at once beside the playbook; and where the playbook keeps them."""
        from synap_play.first_look import FirstLook, plan_folder

        request = self.request
        try:
            folder = plan_folder(request.scenario.name, request.inventory, request.limit, dict(request.extravars))
        except OSError as exc:  # an unreadable cache or inventory file: the playbook alone diagnoses
            record.first_look_skipped(f"first look skipped: {exc}")
            return None, {}

        def on_answer(host: str, name: str, module: str, result: dict) -> None:
            with self.lock:
                if self.closed or stop.requested:  # the run is stopping: a late answer is not news
                    return
                record.first_look_answer(host, name, module, result)
                self.show_answer(host, name, result)

        def on_done(done: FirstLook) -> None:
            reading = request.first_look_reading(done) if request.first_look_reading else None
            with self.lock:
                if not self.closed:
                    record.first_look_done(seconds=done.seconds, plan_written_at=done.plan_written_at,
                                           **(reading[0] if reading else {}))
                    if reading and reading[1] and not stop.requested:
                        self.show_answer("first look", "verdict", {"msg": reading[1]})

        plan_env = {PLAN_DIR_ENV: str(folder)}  # the playbook keeps this run's plan there for the next one
        look = FirstLook(folder, on_answer, on_done=on_done)
        if not look.start():
            return None, plan_env
        if request.first_look_reading:
            request.first_look_reading.begin()
        self.title(record.id)
        return look, plan_env

    def show_answer(self, host: str, name: str, result: dict) -> None:
        """A first-look answer: a line of the live display, or a plain line while that is not up yet."""
        failed = bool(result.get("failed"))
        unread = not failed and result.get("reachable") is False
        label = "failed" if failed else "not read" if unread else "first look"
        message = self.redact_text(str(result.get("msg") or ""))
        if self.progress is not None:
            self.progress.line(label, "red" if failed else "yellow" if unread else "magenta", host, name, message)
        elif not self.request.quiet:
            # No control characters from the answer reach the terminal (incident_report is light to import, rich
            # is not).
            from synap_play import collection

            strip_control = collection.module("plugins.plugin_utils.incident_report").strip_control
            print(f"{time.monotonic() - self.began:6.1f}s {label:<11}[{strip_control(host)}] {strip_control(name)}: "
                  f"{strip_control(message)}", file=sys.stderr, flush=True)
