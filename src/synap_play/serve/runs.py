"""The runs: a capped queue, a few at a time, each one `synap-play alert` in a child process.

The child is the same path as a person's `synap-play alert --payload -`: the alert mapping and severity, the
preflight, the mitigator lock, the incident record, the notifications and the severity gate. Its stdin is the
payload, not a terminal, so whatever the policy would ask about is recorded as "needs approval" and notified.
It runs in a session of its own, so that a Ctrl-C meant for serve reaches it only through serve, which forwards
SIGTERM: the child then stops its playbook and closes its record as interrupted (exit 143), as it does for systemd.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from synap_play import collection, held_steps

collection.load()

from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import iso, parse_iso, utcnow
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import ExitCode

from synap_play.serve.incidents import Incident, IncidentIndex, Key
from synap_play.serve.metrics import ServeMetrics
from synap_play.serve.notes import Event, read_webhook
from synap_play.serve.settings import Settings

log = logging.getLogger("synap_play.serve")
STDERR_KEPT = 20  # lines of a child's stderr kept for its "ended" note when it leaves no record


@dataclass
class Job:
    incident: Incident
    body: bytes  # the webhook body the child is given: this scenario's firing alerts only
    received_at: datetime
    # An approval run (serve/approvals.py): {"of": incident id, "step": the step as asked, "by": who approved}.
    approval: dict[str, str] | None = None
    warm: Future | None = field(default=None, repr=False)  # serve's own first look began (serve/warm.py)
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return self.incident.id


class RunQueue:
    def __init__(self, settings: Settings, index: IncidentIndex, metrics: ServeMetrics):
        self.settings = settings
        self.index = index
        self.metrics = metrics
        self.stopping = False
        self._waiting: deque[Job] = deque()
        self._running: dict[str, tuple[Job, asyncio.Task]] = {}
        self._wake = asyncio.Event()
        metrics.queue_length.set_function(lambda: len(self._waiting))
        metrics.in_flight.set_function(lambda: len(self._running))

    @property
    def full(self) -> bool:
        return len(self._waiting) >= self.settings.queue_size

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def approval_for(self, incident_id: str) -> Job | None:
        """The approval run waiting or in flight for that incident, if any."""
        jobs = [*self._waiting, *(job for job, _ in self._running.values())]
        return next((job for job in jobs if job.approval and job.approval["of"] == incident_id), None)

    def put(self, job: Job) -> None:
        self._waiting.append(job)
        self._wake.set()

    def resume(self) -> list[Job]:
        """Queue again the runs a previous serve queued but never finished starting: waiting when it stopped, or
        started by a serve that died before their record was opened."""
        resumed = []
        for incident in sorted(self.index, key=lambda i: i.id):
            if incident.has_record or incident.key != self.settings.key(incident.scenario):
                continue
            waiting = incident.state == "queued" or (incident.state == "running" and not incident.alive())
            body = (b"" if incident.approval else read_webhook(incident.folder)) if waiting else None
            if body is None:
                continue
            self.index.note(incident, {"event": Event.REQUEUED, "at": iso(utcnow())})
            received = _moment(incident.queued_at) or utcnow()
            job = Job(incident, body, received, approval=incident.approval)
            self.put(job)
            resumed.append(job)
            log.info("queued again %s (%s): it had not started when serve stopped", incident.id, incident.scenario)
        return resumed

    async def run_forever(self) -> None:
        """Start waiting runs while there is a free slot, one per scenario and target at a time."""
        while not self.stopping:
            while len(self._running) < self.settings.max_parallel:
                job = self._next()
                if job is None:
                    break
                task = asyncio.create_task(self._run(job), name=f"run {job.id}")
                self._running[job.id] = (job, task)
                task.add_done_callback(lambda _task, job_id=job.id: self._finished(job_id))
            self._wake.clear()
            await self._wake.wait()

    def _next(self) -> Job | None:
        busy: set[Key] = {job.incident.key for job, _ in self._running.values()}
        for job in self._waiting:
            if job.incident.key not in busy:
                self._waiting.remove(job)
                return job
        return None

    def _finished(self, job_id: str) -> None:
        self._running.pop(job_id, None)
        self._wake.set()

    # -- one run ------------------------------------------------------------------------------------------
    async def _run(self, job: Job) -> None:
        try:
            await self._follow(job)
        except Exception as exc:  # one run's bookkeeping (a full disk, say) must not stop the others
            log.error("%s: serve could not follow the run: %s: %s", job.id, exc.__class__.__name__, exc,
                      exc_info=self.settings.verbose > 0)

    async def _follow(self, job: Job) -> None:
        incident = job.incident
        looked = False
        if job.warm is not None:
            try:
                looked = await asyncio.wrap_future(job.warm)
            except Exception as exc:  # the run looks for itself
                log.warning("%s: serve's first look failed: %s", incident.id, exc)
        try:
            job.process = await asyncio.create_subprocess_exec(
                *self._command(job, looked), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            log.error("%s: the run could not start: %s", incident.id, exc)
            self._ended(job, None, f"the run could not start: {exc}", None)
            return
        self.index.note(incident, {"event": Event.STARTED, "at": iso(utcnow()), "pid": job.process.pid,
                                   "host": socket.gethostname()})
        log.info("started %s (%s at %s, pid %s)", incident.id, incident.scenario, incident.severity, job.process.pid)
        _, stderr = await job.process.communicate(job.body)
        code = job.process.returncode
        said = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()][-STDERR_KEPT:]
        record = self.index.record_changed(incident)
        self._ended(job, code, said[-1] if said and record is None else None, record)

    def _command(self, job: Job, looked: bool = False) -> list[str]:
        s = self.settings
        if job.approval:
            steps = [] if job.approval["step"] == held_steps.EVERY_STEP else [job.approval["step"]]
            argv = [sys.executable, "-m", "synap_play", "approve", job.approval["of"], *steps, "--yes",
                    "--operator", job.approval["by"]]
        else:
            argv = [sys.executable, "-m", "synap_play", "alert", "--payload", "-", "--operator", s.operator]
            if s.alert_map is not None:
                argv += ["--alert-map", str(s.alert_map)]
            if looked:
                argv.append("--first-look-done")
        argv += ["--incident-id", job.id, "-i", s.inventory, "--incidents-dir", str(s.incidents_dir),
                 "--output", "json"]
        for option, value in (("--catalog", s.catalog), ("--limit", s.limit)):
            if value is not None:
                argv += [option, str(value)]
        for value in s.extra_vars:
            argv += ["-e", value]
        return argv

    def _ended(self, job: Job, code: int | None, error: str | None, record: dict[str, Any] | None) -> None:
        incident = job.incident
        if record is None and self.stopping and code is not None and code < 0:
            # Our SIGTERM reached the child before it had opened its record: it did nothing, so it waits for the
            # next start like a run that never started.
            self.index.note(incident, {"event": Event.DEFERRED, "at": iso(utcnow()), "exit_code": code,
                                       "why": "serve stopped before the run had begun; it runs when serve starts"})
            log.info("%s: stopped before it had begun; it runs when serve starts again", incident.id)
            return
        status = record.get("status") if record else None
        outcome = status or ("refused" if code == ExitCode.USAGE else "no record")
        entry = {"event": Event.ENDED, "at": iso(utcnow()), "exit_code": code, "status": status}
        if error:
            entry["error"] = error
        self.index.note(incident, entry)
        if job.approval:  # `synap-play approve` noted on the incident it continued: read that incident again
            self.index.load(job.approval["of"])
        self.metrics.run_ended(incident.scenario, outcome, job.received_at, record)
        log.info("ended %s: %s (exit %s)%s", incident.id, outcome, code, f": {error}" if error else "")

    # -- stopping -----------------------------------------------------------------------------------------
    def forward(self, signum: int) -> None:
        """Pass a stop signal on to every run in flight: each closes its record as interrupted."""
        for job, _ in self._running.values():
            if job.process is not None and job.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    job.process.send_signal(signum)

    async def stop(self, signum: int = signal.SIGTERM) -> None:
        """Start nothing more, stop the runs in flight (waiting up to stop_timeout for their records), and leave
        the waiting ones queued on disk for the next start."""
        self.stopping = True
        self._wake.set()
        for job in self._waiting:
            self.index.note(job.incident, {"event": Event.DEFERRED, "at": iso(utcnow()),
                                           "why": "serve stopped before the run started; it runs when serve starts"})
        self._waiting.clear()
        tasks = [task for _, task in self._running.values()]
        # A run still starting may not have a process yet: it is signalled as soon as it has one.
        for _ in range(20):
            if all(job.process is not None for job, _ in self._running.values()):
                break
            await asyncio.sleep(0.05)
        self.forward(signum)
        if not tasks:
            return
        done, pending = await asyncio.wait(tasks, timeout=self.settings.stop_timeout)
        if pending:
            log.error("%d run(s) did not stop within %.0f s of the signal; killing them", len(pending),
                      self.settings.stop_timeout)
            for job, _ in list(self._running.values()):
                if job.process is not None and job.process.returncode is None:
                    _kill_tree(job.process.pid)
            await asyncio.wait(pending, timeout=5)


def _moment(text: str | None) -> datetime | None:
    try:
        return parse_iso(text) if text else None
    except ValueError:
        return None


def _kill_tree(pid: int) -> None:
    """SIGKILL a child and everything it started (ansible-playbook's workers run in sessions of their own)."""
    from synap_play.stopping import descendants

    for member in [*descendants(pid), pid]:
        with contextlib.suppress(OSError):
            os.kill(member, signal.SIGKILL)
