"""synap-play: the Synap incident-response runbook, one command per scenario.

Heavy imports (ansible-runner, rich, jinja2) happen inside the commands that need them, so that
`synap-play --help` and `synap-play list` answer at once.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import sys
from datetime import timedelta
from pathlib import Path

import click

from synap_play import __version__, collection

collection.load()

from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import (
    iso,
    list_records,
    load_record,
    parse_iso,
    utcnow,
)
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import (
    CLOSED_STATUSES,
    RECORD_FILE,
    REPORT_FILE,
    ExitCode,
)

# How far in the future --started-at may lie (clock skew between machines), and no further.
STARTED_AT_FUTURE_TOLERANCE = timedelta(minutes=5)
# An incident id (YYYYMMDDTHHMMSSZ-<scenario>-<6 hex>) or a start of one: nothing else reaches the file system.
INCIDENT_ID_PREFIX = re.compile(r"\d{1,8}|\d{8}T\d{0,6}|\d{8}T\d{6}Z(-[A-Za-z0-9_-]*)?")


def _exit_codes_help() -> str:
    """The exit codes, from the one table of them (protocol.ExitCode), wrapped for --help."""
    import textwrap

    lines = ["\b", "Exit codes:"]
    for code in ExitCode:
        wrapped = textwrap.wrap(code.meaning, 72)
        lines.append(f"  {code.value:<4} {wrapped[0]}")
        lines.extend(f"       {more}" for more in wrapped[1:])
    return "\n".join(lines) + "\n"


EXIT_CODES_HELP = _exit_codes_help()

MAIN_EPILOG = f"""\b
Examples:
  synap-play list
  synap-play worker-queue-backup --severity P1
  synap-play high-error-rate --check -i staging
  synap-play database-connection-failure --severity P0 --yes
  synap-play incidents
  synap-play show 20261129T031500Z-worker-queue-backup-3fa2c1

{EXIT_CODES_HELP}"""


class OperatorError(click.ClickException):
    """A one-line problem the operator can act on; exit code 2 unless said otherwise."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class SynapPlay(click.Group):
    """A group where `synap-play <scenario>` means `synap-play run <scenario>`, and `lab` loads on demand."""

    lazy = {
        "lab": ("synap_play.lab.cli", "lab", "Bring up, break and repair the local rehearsal lab."),
        "alert": ("synap_play.alert_cli", "alert", "Run the scenario an alert maps to: by NAME or an Alertmanager payload."),
        "postmortem": ("synap_play.alert_cli", "postmortem", "Draft the post-mortem of an incident from its record."),
        "approve": ("synap_play.approve_cli", "approve", "Approve or decline the steps an incident's run held back."),
        "replay": ("synap_play.replay_cli", "replay", "Re-run a scenario's decisions from recorded look-ups; touch nothing."),
        "serve": ("synap_play.serve.cli", "serve", "Receive Alertmanager webhooks over HTTP and run each firing scenario."),
        "triage": ("synap_play.triage_cli", "triage", "Which scenario, which severity: every diagnosis at once, read-only."),
        "validate": ("synap_play.validate.cli", "validate", "Check the roles' synap.ops tasks and the inventories for typos."),
    }

    def list_commands(self, ctx):
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx, name):
        if name in self.lazy:
            module_name, attribute, _ = self.lazy[name]
            import importlib

            try:
                return getattr(importlib.import_module(module_name), attribute)
            except ImportError as exc:
                raise OperatorError(f"'{name}' is not available in this installation ({exc})") from exc
        return super().get_command(ctx, name)

    def format_commands(self, ctx, formatter):
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy:
                rows.append((name, self.lazy[name][2]))
            else:
                command = super().get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(limit=80)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)
        formatter.write_paragraph()
        formatter.write_text("Any scenario name is also a command: 'synap-play <scenario>' is 'synap-play run <scenario>'.")

    def resolve_command(self, ctx, args):
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in self.list_commands(ctx):
            return "run", super().get_command(ctx, "run"), args
        return super().resolve_command(ctx, args)


def project_option(function):
    function = click.option("--catalog", type=click.Path(dir_okay=False, path_type=Path), default=None,
                            help="Scenario catalog (default: playbooks/scenarios.yml of the project).")(function)
    return function


def incidents_dir_option(function):
    return click.option("--incidents-dir", type=click.Path(file_okay=False, path_type=Path),
                        default=Path("incidents"), show_default=True,
                        help="Where incident records are written and read.")(function)


def output_option(function):
    return click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True,
                        help="text for people; json prints the record on stdout and nothing else.")(function)


@click.group(cls=SynapPlay, epilog=MAIN_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="synap-play")
def cli():
    """Run the Synap incident-response runbook as Ansible playbooks: diagnose, mitigate within the severity
    policy, verify, and write the incident record."""


def _catalog(path: Path | None):
    from ansible_collections.synap.ops.plugins.plugin_utils.catalog import CatalogError, load_catalog

    from synap_play.project import ProjectNotFound, project_root

    try:
        return load_catalog(path or project_root() / "playbooks" / "scenarios.yml")
    except (CatalogError, ProjectNotFound) as exc:
        raise OperatorError(str(exc)) from exc


@cli.command("list")
@project_option
@output_option
def list_scenarios(catalog, output):
    """List the scenarios whose playbook exists."""
    scenarios = [s for s in _catalog(catalog).values() if s.available]
    if output == "json":
        import json

        click.echo(json.dumps([{"name": s.name, "title": s.title, "severity": s.severity, "alerts": list(s.alerts),
                                "playbook": str(s.playbook), "description": s.description} for s in scenarios],
                              indent=2))
        return
    if not scenarios:
        click.echo("No scenario playbooks are installed.")
        return
    width = max(len(s.name) for s in scenarios)
    for s in scenarios:
        alerts = f" (alerts: {', '.join(s.alerts)})" if s.alerts else ""
        click.echo(f"{s.name:<{width}}  {s.severity}  {s.description}{alerts}")


def _parse_extra_vars(values: tuple[str, ...]) -> dict:
    """-e as ansible-playbook takes it: key=value pairs, a JSON/YAML mapping, or @file."""
    import shlex

    import yaml

    merged: dict = {}
    for value in values:
        value = value.strip()
        if value.startswith("@"):
            path = Path(value[1:])
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
            except OSError as exc:
                raise OperatorError(f"extra vars file {path} cannot be read: {exc.strerror}") from exc
            except UnicodeDecodeError as exc:
                raise OperatorError(f"extra vars file {path} is not a text file (not UTF-8 at byte {exc.start}); "
                                    f"give a YAML or JSON file") from exc
            except yaml.YAMLError as exc:
                raise OperatorError(f"extra vars file {path} is not valid YAML or JSON") from exc
            if not isinstance(loaded, dict):
                raise OperatorError(f"extra vars file {path} must hold a mapping of names to values")
            merged.update(loaded)
        elif value.startswith("{"):
            try:
                loaded = yaml.safe_load(value)
            except yaml.YAMLError as exc:
                raise OperatorError(f"extra vars {value[:40]!r} are not a valid JSON/YAML mapping") from exc
            if not isinstance(loaded, dict):
                raise OperatorError(f"extra vars {value[:40]!r} must be a mapping")
            merged.update(loaded)
        else:
            try:
                pairs = shlex.split(value)
            except ValueError as exc:
                raise OperatorError(f"extra vars {value[:40]!r} cannot be split into key=value pairs ({exc}); "
                                    f"check the quotes") from exc
            for pair in pairs:
                key, sep, val = pair.partition("=")
                if not sep or not key.isidentifier():
                    raise OperatorError(f"extra var {pair!r} is not key=value; use -e key=value or -e @file.yml")
                merged[key] = val
    return merged


def _inventory(value: str) -> Path:
    from synap_play.project import project_root

    if not value.strip() or value in (".", ".."):
        raise OperatorError(f"-i {value!r} names no inventory; use a name under inventory/ such as lab, or a path")
    if "/" not in value:
        # A bare word is a name under inventory/, never whatever folder of that name the shell is in.
        named = project_root() / "inventory" / value
        if named.exists():
            return named
        available = sorted(p.name for p in (project_root() / "inventory").iterdir() if p.is_dir())
        raise OperatorError(f"inventory '{value}' not found; use one of {', '.join(available) or 'none'}, "
                            f"or a path such as ./{value}")
    path = Path(value)
    if path.exists():
        return path.resolve()
    raise OperatorError(f"inventory path {value} does not exist")


@cli.command("run", epilog=EXIT_CODES_HELP)
@click.argument("scenario")
@click.option("--severity", type=click.Choice(["P0", "P1", "P2", "P3"]), default=None,
              help="Incident severity (default: the scenario's, from the catalog). Decides what runs without asking.")
@click.option("-i", "--inventory", "inventory_name", default="lab", show_default=True, metavar="NAME|PATH",
              help="Inventory: a name under inventory/, or a path.")
@click.option("--check", is_flag=True, help="Diagnose and print the plan; change nothing.")
@click.option("--yes", "approve", is_flag=True, help="Approve every mitigation the severity policy would ask about.")
@click.option("--limit", default=None, help="Limit the run to these hosts (Ansible pattern).")
@click.option("-e", "--extra-vars", "extra_vars", multiple=True, metavar="KEY=VALUE|@FILE",
              help="Extra variables, as ansible-playbook takes them. Repeatable.")
@output_option
@incidents_dir_option
@click.option("--operator", default=None, help="Who is running this (default: $USER).")
@click.option("--started-at", default=None, metavar="ISO-8601",
              help="When the incident started (default: now); the escalation level counts from it.")
@click.option("--wait-lock", "wait_lock", type=click.FloatRange(min=0), default=0, show_default=True, metavar="SECONDS",
              help="If another run is mitigating this scenario on this target, wait this long for it (else exit 5).")
@click.option("--strategy", type=click.Choice(["linear", "mitogen"]), default=None, metavar="linear|mitogen",
              help="Ansible play strategy [default: $SYNAP_PLAY_STRATEGY, else linear: synap.ops.linear, Ansible's "
                   "linear without a worker for connection-free tasks and false conditions]. mitogen runs each further task "
                   "faster (pip install 'synap-play[speed]'); without it installed the run says so and uses linear.")
@click.option("--first-look/--no-first-look", "first_look", default=True, show_default=True,
              help="Answer the scenario's look-ups at once from the plan its last run kept, beside the playbook.")
@project_option
@click.option("-v", "--verbose", count=True, help="More detail: Ansible output, and the cause of internal errors.")
def run(scenario, severity, inventory_name, check, approve, limit, extra_vars, output, incidents_dir, operator,
        started_at, wait_lock, strategy, first_look, catalog, verbose):
    """Run SCENARIO's playbook: diagnose, mitigate as the severity policy allows, verify, record.

    \b
    Examples:
      synap-play run worker-queue-backup --severity P1
      synap-play worker-queue-backup --check --output json
      synap-play proposal-system-failure -e proposal_ids=1b2c...,9f3e... --yes
    """
    scenarios = _catalog(catalog)
    if scenario not in scenarios or not scenarios[scenario].available:
        raise OperatorError(f"unknown scenario '{scenario}'; run 'synap-play list'")
    from synap_play.session import IncidentRun

    chosen = scenarios[scenario]
    inventory, variables = _inventory(inventory_name), _parse_extra_vars(extra_vars)
    started, run_strategy = _parse_started_at(started_at), _strategy(strategy)
    preflight_run(chosen, inventory, inventory_name, limit, variables)
    incident_run = IncidentRun(
        scenario=chosen,
        severity=severity or chosen.severity,
        inventory=inventory,
        inventory_label=inventory_name,
        extravars=variables,
        check=check,
        approve=approve,
        limit=limit,
        output=output,
        incidents_dir=writable_incidents_dir(incidents_dir),
        operator=operator or os.environ.get("USER") or getpass.getuser(),
        started_at=started,
        verbose=verbose,
        lock_wait=wait_lock,
        first_look=first_look,
        strategy=run_strategy,
    )
    sys.exit(incident_run.execute())


def preflight_run(scenario, inventory: Path, inventory_label: str, limit: str | None, extravars: dict) -> None:
    """Refuse a run that cannot start (preflight.py: the inventory, --limit, the scenario's variables) before it
    has a record."""
    from synap_play.preflight import PreflightError, preflight

    try:
        preflight(scenario, inventory, inventory_label, limit, extravars)
    except PreflightError as exc:
        raise OperatorError(str(exc)) from exc


def writable_incidents_dir(path: Path) -> Path:
    """The folder records go to, created when missing; OperatorError when no record can be written there."""
    import tempfile

    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise OperatorError(f"--incidents-dir {path}: no record can be written there ({exc.strerror or exc}); "
                            f"give a writable folder") from exc
    return path


def _strategy(chosen: str | None) -> str:
    """The play strategy to use: mitogen only when it is installed, else linear with a one-line notice."""
    chosen = chosen or os.environ.get("SYNAP_PLAY_STRATEGY") or "linear"
    if chosen not in ("linear", "mitogen"):
        raise OperatorError(f"unknown strategy '{chosen}' (from SYNAP_PLAY_STRATEGY); use linear or mitogen")
    if chosen == "mitogen":
        from synap_play.runner import mitogen_strategy_dir

        if mitogen_strategy_dir() is None:
            click.echo("synap-play: mitogen is not installed (pip install 'synap-play[speed]'); using the linear "
                       "strategy", err=True)
            return "linear"
    return chosen


def _parse_started_at(value: str | None):
    if not value:
        return None
    try:
        moment = parse_iso(value)
    except ValueError as exc:
        raise OperatorError(f"--started-at {value!r} is not an ISO-8601 time such as 2026-11-29T03:15:00Z") from exc
    if moment.tzinfo is None:
        raise OperatorError(f"--started-at {value!r} needs a time zone, such as Z or +01:00")
    now = utcnow()
    if moment > now + STARTED_AT_FUTURE_TOLERANCE:
        raise OperatorError(f"--started-at {value!r} is in the future (now is {iso(now)}); give when the incident "
                            f"started")
    return moment


@cli.command("incidents")
@incidents_dir_option
@click.option("-n", "--last", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many of the newest records to show.")
@output_option
def incidents(incidents_dir, last, output):
    """List recent incident records, newest first. An open incident (not resolved or healthy) shows the
    escalation level it has reached by now; a closed one, the level it ended at."""
    from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import escalation

    unreadable: list[tuple[Path, str]] = []
    records = list_records(incidents_dir, unreadable)[:last]
    for folder, why in unreadable:
        click.echo(f"synap-play: incident record {folder / RECORD_FILE} cannot be read ({why}); it is not listed",
                   err=True)
    for record in records:
        record["open"] = record.get("status") not in CLOSED_STATUSES
        if record["open"] and record.get("started_at"):
            with contextlib.suppress(ValueError, TypeError):  # a hand-edited start: the level it was written with
                record["escalation"] = escalation(parse_iso(str(record["started_at"])))
    if output == "json":
        import json

        click.echo(json.dumps([{k: r.get(k) for k in ("id", "scenario", "severity", "status", "open", "exit_code",
                                                       "started_at", "ended_at", "escalation")} for r in records],
                              indent=2))
        return
    if not records:
        click.echo(f"No incident records in {incidents_dir}.")
        return
    for r in records:
        rung = r.get("escalation") if isinstance(r.get("escalation"), dict) else {}
        state = "OPEN  " if r["open"] else "closed"
        click.echo(f"{r['id']}  {r.get('severity')}  {state}  {r.get('status')!s:<14}  escalation {rung.get('level', '?')} "
                   f"({rung.get('contact', '?')})  {r.get('started_at')}")


def incident_folder(incident_id: str, incidents_dir: Path) -> Path:
    """The folder of one incident by id or unique prefix; OperatorError otherwise. Only an id (or a start of one)
    is looked up, and only a folder directly inside the incidents folder is returned."""
    if not INCIDENT_ID_PREFIX.fullmatch(incident_id):
        raise OperatorError(f"{incident_id!r} is not an incident id (YYYYMMDDTHHMMSSZ-<scenario>-<6 hex>, or the "
                            f"start of one); run 'synap-play incidents'")
    root = incidents_dir.resolve()
    matches = sorted(p for p in root.glob(f"{incident_id}*")
                     if p.resolve().parent == root and (p / RECORD_FILE).is_file()) if root.is_dir() else []
    exact = [p for p in matches if p.name == incident_id]
    if exact:
        matches = exact
    if not matches:
        raise OperatorError(f"no incident '{incident_id}' in {incidents_dir}; run 'synap-play incidents'")
    if len(matches) > 1:
        raise OperatorError(f"'{incident_id}' matches {len(matches)} incidents; give more of the id")
    return matches[0]


@cli.command("show")
@click.argument("incident_id")
@incidents_dir_option
@output_option
def show(incident_id, incidents_dir, output):
    """Print one incident: its report, or with --output json its record. A unique prefix of the id will do."""
    folder = incident_folder(incident_id, incidents_dir)
    try:
        if output == "json":
            import json

            click.echo(json.dumps(load_record(folder), indent=2))
        elif (folder / REPORT_FILE).is_file():
            click.echo((folder / REPORT_FILE).read_text(encoding="utf-8"))
        else:
            from ansible_collections.synap.ops.plugins.plugin_utils.incident_report import render_report

            record = load_record(folder)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            click.echo(render_report(record))
    except (OSError, ValueError, KeyError) as exc:
        raise OperatorError(f"incident record {folder} cannot be read ({exc}); run 'synap-play incidents'") from exc


def main() -> None:
    """Console entry point: no traceback reaches the operator unless -v asked for details."""
    verbose = any(a in ("-v", "--verbose") or (a.startswith("-v") and set(a[1:]) == {"v"}) for a in sys.argv[1:])
    try:
        # Not click's standalone mode: it turns Ctrl-C into "Aborted!" and exit 1, where ours is 130.
        returned = cli.main(prog_name="synap-play", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, click.Abort) as exc:
        if isinstance(exc, click.Abort) and not isinstance(exc.__context__, KeyboardInterrupt):
            click.echo("synap-play: aborted", err=True)  # a prompt that got no answer (end of input)
            sys.exit(1)
        click.echo("synap-play: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except Exception as exc:  # the last line of defence: one line, and details only with -v
        if verbose:
            import traceback

            traceback.print_exc()
        click.echo(f"synap-play: internal error: {exc.__class__.__name__}: {exc} (run with -v for details)", err=True)
        sys.exit(ExitCode.FAILED)
    sys.exit(int(returned) if isinstance(returned, int) else ExitCode.OK)
