"""The service's life: read the incidents, listen, run, and on SIGTERM (or Ctrl-C) stop in order."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
from pathlib import Path
from typing import Any

from aiohttp import web

from synap_play.inventory_secrets import learn_secrets
from synap_play.serve.app import Routes
from synap_play.serve.incidents import IncidentIndex
from synap_play.serve.intake import Intake
from synap_play.serve.metrics import ServeMetrics
from synap_play.serve.runs import RunQueue
from synap_play.serve.settings import Settings
from synap_play.serve.warm import WarmLooks

log = logging.getLogger("synap_play.serve")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class ListenError(Exception):
    """The address cannot be listened on; the message says why, in one line."""


async def serve(settings: Settings, catalog: dict[str, Any], mapping, inventory: Path, extravars: dict) -> int:
    """Serve until a stop signal; 0 once the runs in flight have closed their records."""
    redactor = await asyncio.to_thread(learn_secrets, inventory, extravars)
    index = IncidentIndex(settings.incidents_dir)
    await asyncio.to_thread(index.refresh)  # every record once: what is open survives a restart
    metrics = ServeMetrics()
    runs = RunQueue(settings, index, metrics)
    warm = WarmLooks(inventory, settings.limit, extravars, redactor)
    # Before listening: the look-ups' imports done once, never by two threads at once.
    await asyncio.to_thread(warm.prepare, sorted({route.scenario for route in mapping.alerts.values()}))
    intake = Intake(settings, catalog, mapping, index, runs, metrics, warm)
    routes = Routes(settings, intake, runs, index, metrics)
    runner = web.AppRunner(routes.app(), handle_signals=False,
                           access_log=logging.getLogger("aiohttp.access") if settings.verbose else None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
    except OSError as exc:
        await runner.cleanup()
        raise ListenError(_listen_problem(settings, exc)) from exc

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        if stop.is_set():  # a second signal: the runs get it too, and stop at once
            runs.forward(signum)
        stop.set()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    resumed = runs.resume()
    dispatcher = asyncio.create_task(runs.run_forever(), name="dispatcher")
    open_now = len(index.open_incidents())
    log.info("listening on %s (inventory %s, incidents in %s; %d open incident(s), %d run(s) queued again)",
             settings.url, settings.inventory, settings.incidents_dir, open_now, len(resumed))
    try:
        await stop.wait()
        name = signal.Signals(received[0]).name
        log.info("%s: taking no more alerts; %d run(s) in flight are stopped and recorded as interrupted, %d waiting "
                 "run(s) start when serve starts again", name, runs.in_flight, runs.waiting)
        # Whatever stopped serve, its runs are stopped as systemd stops a service (SIGHUP would tell them that a
        # terminal went away, and they have none); a second signal reaches them as it is.
        await runs.stop(signal.SIGTERM)
    finally:
        dispatcher.cancel()
        warm.close()
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
        await runner.cleanup()
    log.info("stopped")
    return 0


def _listen_problem(settings: Settings, exc: OSError) -> str:
    where = f"--listen {settings.host}:{settings.port}"
    if exc.errno == errno.EADDRINUSE:
        return f"{where}: the address is already in use (another synap-play serve?); stop it or pick another port"
    if exc.errno == errno.EACCES:
        return f"{where}: not allowed to listen there (ports below 1024 need privileges); pick a port above 1024"
    if isinstance(exc, socket.gaierror):
        return f"{where}: no such host ({exc.strerror or exc})"
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return f"{where}: this machine has no such address ({exc.strerror or exc})"
    return f"{where}: cannot listen ({exc.strerror or exc})"
