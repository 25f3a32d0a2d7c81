"""`synap-play serve`: the command, its options, and everything checked before it listens.

Registered in the main group by synap_play.cli (loaded only when asked for: aiohttp is imported here).
"""

from __future__ import annotations

import getpass
import ipaddress
import logging
import os
import re
import stat
import sys
from pathlib import Path

import click

from synap_play import cli as base
from synap_play.cli import OperatorError

DEFAULT_LISTEN = "127.0.0.1:9095"
LOOPBACK_NAMES = ("localhost",)

SERVE_EPILOG = f"""\b
Examples:
  synap-play serve                                   # {DEFAULT_LISTEN}, inventory lab, no token (loopback only)
  synap-play serve --listen 0.0.0.0:9095 --token-file /etc/synap-play/serve.token -i staging \\
      --incidents-dir /var/lib/synap-play/incidents
  curl -s localhost:9095/api/incidents
  curl -s -X POST -H 'Content-Type: application/json' --data @webhook.json localhost:9095/api/alerts

\b
Endpoints:
  POST /api/alerts          Alertmanager webhook (version 4): 202 with what was queued
                            or noted; 400 malformed (the reason); 401 no or wrong token;
                            413 over 10 MB; 503 queue full or stopping
  GET  /api/incidents       open and recent incidents (?last=N)
  GET  /api/incidents/ID    the record, serve's notes, the steps needing approval
  POST /api/incidents/ID/approvals/STEP
                            {{"decision": "approve"|"decline", "by": NAME}}; STEP is a
                            number from pending_approval, a task name, or all: 202
                            with the approval run (the steps planned again first)
  GET  /healthz             200, or 503 while stopping
  GET  /metrics             Prometheus text format

\b
Exit codes:
  0    stopped by SIGTERM, SIGINT or SIGHUP, after the runs in flight were
       stopped and recorded as interrupted
  2    usage error: bad option, token file missing or empty, a non-loopback
       address without --token-file, the address in use, unknown inventory
"""


def _parse_listen(value: str) -> tuple[str, int]:
    match = re.fullmatch(r"\[(?P<v6>[^\]]+)\]:(?P<p6>\d{1,5})|(?P<host>[^:\[\]\s]*):(?P<port>\d{1,5})", value.strip())
    if not match:
        raise OperatorError(f"--listen {value!r} is not HOST:PORT, such as {DEFAULT_LISTEN} or [::1]:9095")
    host = match["v6"] or match["host"] or "127.0.0.1"
    port = int(match["p6"] or match["port"])
    if not 1 <= port <= 65535:
        raise OperatorError(f"--listen {value!r}: the port must be from 1 to 65535")
    return host, port


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _read_token(path: Path) -> str:
    """The bearer token, as Alertmanager's http_config.authorization.credentials_file holds it."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise OperatorError(f"--token-file {path}: no such file; put the bearer token Alertmanager sends in it") from exc
    except IsADirectoryError as exc:
        raise OperatorError(f"--token-file {path} is a folder; give the file holding the token") from exc
    except OSError as exc:
        raise OperatorError(f"--token-file {path} cannot be read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise OperatorError(f"--token-file {path} is not a text file; put the token alone in it") from exc
    token = text.strip()
    if not token:
        raise OperatorError(f"--token-file {path} is empty; put the bearer token Alertmanager sends in it")
    if any(character.isspace() for character in token):
        raise OperatorError(f"--token-file {path} holds more than one word; put the token alone in it")
    if mode & stat.S_IROTH:
        click.echo(f"synap-play serve: warning: --token-file {path} is readable by every user of this machine "
                   f"(mode {stat.S_IMODE(mode):04o}); chmod 600 it", err=True)
    return token


def _preflight_warnings(scenarios, mapping, inventory: Path, inventory_label: str, limit: str | None,
                        extravars: dict) -> None:
    """Say now which mapped scenarios cannot run against this inventory (their runs would be refused one by one,
    as `synap-play alert` refuses them); the others are served all the same."""
    from synap_play.preflight import PreflightError, preflight

    problems: dict[str, list[str]] = {}
    for name in sorted({route.scenario for route in mapping.alerts.values()}):
        scenario = scenarios.get(name)
        if scenario is None or not scenario.available:
            continue
        try:
            preflight(scenario, inventory, inventory_label, limit, extravars)
        except PreflightError as exc:
            problems.setdefault(str(exc), []).append(name)
    for problem, names in problems.items():
        click.echo(f"synap-play serve: warning: {', '.join(names)}: {problem}; their alerts are answered, and their "
                   f"runs refused until that is fixed", err=True)


def _setup_logging(verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("synap-play serve: %(message)s"))
    for name in ("synap_play.serve", "aiohttp.access", "aiohttp.server"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    if not verbose:
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


@click.command("serve", epilog=SERVE_EPILOG)
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT",
              help="Address to listen on. Other than loopback only with --token-file.")
@click.option("--token-file", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="File holding the bearer token requests must carry (Authorization: Bearer <token>), as "
                   "Alertmanager's http_config.authorization.credentials_file sends it.")
@click.option("-i", "--inventory", "inventory_name", default="lab", show_default=True, metavar="NAME|PATH",
              help="Inventory the runs use: a name under inventory/, or a path.")
@base.incidents_dir_option
@click.option("--limit", default=None, help="Limit the runs to these hosts (Ansible pattern).")
@click.option("-e", "--extra-vars", "extra_vars", multiple=True, metavar="KEY=VALUE|@FILE",
              help="Extra variables for every run, as ansible-playbook takes them. Repeatable.")
@click.option("--operator", default=None, help="Who the records name as running the incident (default: $USER).")
@click.option("--max-parallel", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Runs of different scenarios at once (one per scenario and target, always).")
@click.option("--queue-size", type=click.IntRange(1, 10000), default=16, show_default=True,
              help="Runs waiting for a slot; past it a webhook that opens an incident gets 503 (Alertmanager retries).")
@click.option("--stop-timeout", type=click.FloatRange(min=1), default=30, show_default=True, metavar="SECONDS",
              help="On SIGTERM, how long the runs in flight get to close their records before they are killed.")
@click.option("--alert-map", "alert_map", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Alert -> scenario mapping (default: playbooks/alerts.yml of the project).")
@base.project_option
@click.option("-v", "--verbose", count=True, help="Log every HTTP request too.")
def serve(listen, token_file, inventory_name, incidents_dir, limit, extra_vars, operator, max_parallel, queue_size,
          stop_timeout, alert_map, catalog, verbose):
    """Receive Alertmanager webhooks over HTTP and run each firing scenario, as 'synap-play alert' does.

    A firing alert opens an incident and queues its scenario's run (the mapping, the severity policy, the
    mitigator lock, the record, the notifications; no terminal, so what the policy would ask becomes "needs
    approval"). While the incident is open, Alertmanager's repeats are noted on it, not run again; a resolved
    alert is noted on it. Alertmanager re-sending a firing the incident already ran for is noted on it even after
    it closed (for 15 minutes); a new firing after it closed opens a new one. Runs go a few at a time, at most one per
    scenario and target. SIGTERM stops the runs in flight (their records say interrupted) and exits 0; runs
    still waiting start when serve starts again, and what is open is read back from the records.
    """
    from ansible_collections.synap.ops.plugins.plugin_utils.alerts import AlertError, load_mapping

    from synap_play.alert_cli import _mapping_path

    host, port = _parse_listen(listen)
    token = _read_token(token_file) if token_file is not None else None
    if token is None and not _is_loopback(host):
        raise OperatorError(f"--listen {listen}: without a token anyone who can reach this address could start runs; "
                            f"pass --token-file FILE (the bearer token Alertmanager sends), or listen on 127.0.0.1")
    scenarios = base._catalog(catalog)
    try:
        mapping = load_mapping(_mapping_path(alert_map), scenarios)
    except AlertError as exc:
        raise OperatorError(str(exc)) from exc
    inventory, extravars = base._inventory(inventory_name), base._parse_extra_vars(extra_vars)
    _preflight_warnings(scenarios, mapping, inventory, inventory_name, limit, extravars)

    from synap_play.serve.server import ListenError
    from synap_play.serve.server import serve as serve_forever
    from synap_play.serve.settings import Settings

    settings = Settings(
        host=host, port=port, token=token, inventory=inventory_name,
        incidents_dir=base.writable_incidents_dir(incidents_dir).resolve(),
        catalog=catalog.resolve() if catalog else None, alert_map=alert_map.resolve() if alert_map else None,
        limit=limit, extra_vars=tuple(extra_vars),
        operator=operator or os.environ.get("USER") or getpass.getuser(),
        max_parallel=max_parallel, queue_size=queue_size, stop_timeout=stop_timeout, verbose=verbose)
    _setup_logging(verbose)
    import asyncio

    try:
        return asyncio.run(serve_forever(settings, scenarios, mapping, inventory, extravars))
    except ListenError as exc:
        raise OperatorError(str(exc)) from exc
