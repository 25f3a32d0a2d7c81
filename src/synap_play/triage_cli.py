"""`synap-play triage`: "something is wrong: which scenario, which severity?" in one command.

A vague page or a user's report names no scenario, and the runbook's Assess step asks for a severity. Triage runs
playbooks/triage.yml (roles/triage) in check mode: every scenario's data sources at once, each asked once, with
the runbook's Useful Commands overview; the rules of playbooks/triage-rules.yml rank the scenarios the findings
match, with their evidence, the severity the runbook's definitions give, and the command to run next. Its record
is kept as any run's is (scenario "triage"); nothing is changed, no lock taken, no channel told.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import sys
import threading

import click

from synap_play import cli as base

TRIAGE_EPILOG = """\b
Examples:
  synap-play triage                        # the lab
  synap-play triage -i staging
  synap-play triage -i staging --output json | jq '.triage.matched[0]'

\b
Exit codes:
  0    healthy: nothing matches, and every rule could be judged
  3    the findings match a scenario: run the command it shows
  6    nothing matches, but a source could not be read (the summary names it)
  2, 4, 130, 143  as for 'synap-play run'
"""

# The options of `run` triage takes as they are; it is always a check, at no severity of its own.
_TAKEN = ("inventory_name", "limit", "extra_vars", "output", "incidents_dir", "operator", "first_look", "catalog",
          "verbose", "strategy")
_RUN_OPTIONS = [param for param in base.run.params if isinstance(param, click.Option) and param.name in _TAKEN]


@click.command("triage", epilog=TRIAGE_EPILOG)
def triage(inventory_name, limit, extra_vars, output, incidents_dir, operator, first_look, catalog, verbose, strategy):
    """Diagnose every scenario at once, read-only, and name the scenario(s) the findings match.

    Each match comes with its evidence, the severity the runbook's definitions give, and the exact command to
    run next. The rules are playbooks/triage-rules.yml ('synap-play validate' checks them).
    """
    from synap_play.collection import load

    load()
    from ansible_collections.synap.ops.plugins.plugin_utils.catalog import Scenario

    from synap_play.session import IncidentRun

    scenarios = base._catalog(catalog)
    playbooks = next(iter(scenarios.values())).playbook.parent if scenarios else None
    if playbooks is None or not (playbooks / "triage.yml").is_file():
        raise base.OperatorError("triage is not installed beside the scenario catalog (playbooks/triage.yml)")
    # Every variable any scenario needs: the triage reads every scenario's sources.
    requires = tuple(dict.fromkeys(name for scenario in scenarios.values() for name in scenario.requires))
    chosen = Scenario(name="triage", title="Triage", severity="P3", playbook=playbooks / "triage.yml",
                      description="Every scenario's diagnosis at once; which one the findings match",
                      requires=requires)
    inventory, variables = base._inventory(inventory_name), base._parse_extra_vars(extra_vars)
    base.preflight_run(chosen, inventory, inventory_name, limit, variables)
    incident_run = IncidentRun(
        scenario=chosen, severity=chosen.severity, inventory=inventory, inventory_label=inventory_name,
        extravars=variables, check=True, approve=False, limit=limit, output=output,
        incidents_dir=base.writable_incidents_dir(incidents_dir),
        operator=operator or os.environ.get("USER") or getpass.getuser(), started_at=None, verbose=verbose,
        first_look=first_look, strategy=base._strategy(strategy), show_outcome=False,
        first_look_reading=FirstLookVerdict(playbooks, inventory_name, list(scenarios)),
    )
    code = incident_run.execute()
    record = _record(incident_run.folder)
    if output == "json":
        print(json.dumps({**record, "triage": verdict_of(record)} if record else {"exit_code": code}, indent=2))
    elif record:
        show(record, incidents_dir)
    sys.exit(code)


triage.params.extend(_RUN_OPTIONS)


class FirstLookVerdict:
    """The verdict from the first look's answers, as soon as they are all in: the rules applied to them with the
    settings the last triage's playbook kept beside its look-ups. Shown and recorded (first_look.triage) before
    the playbook's own verdict, which stands."""

    def __init__(self, playbooks, inventory_label: str, scenarios: list[str]):
        self.rules_file, self.inventory_label, self.scenarios = playbooks / "triage-rules.yml", inventory_label, scenarios
        self.rules = None
        self.loading = threading.Thread(target=self._load, name="triage-rules", daemon=True)
        self._starting = threading.Lock()

    def begin(self) -> None:
        # The rules are read and compiled while the look-ups wait on the network: not after their last answer, and
        # not beside the run's start-up either, where compiling them delayed the look-ups' start as much.
        with self._starting:
            if self.loading.ident is None:
                self.loading.start()

    def _load(self) -> None:
        from synap_play import collection
        from synap_play.project import cache_root

        engine = collection.module("plugins.plugin_utils.triage")
        with contextlib.suppress(engine.RulesError):  # the playbook reports the rules' problems
            # Compiled once and kept: compiling them took 0.06 s of the interpreter the look-ups answer in.
            self.rules = engine.load_rules(self.rules_file, self.scenarios, keep_in=cache_root() / "triage-rules")

    def __call__(self, look) -> tuple[dict, str] | None:
        from ansible_collections.synap.ops.plugins.plugin_utils.protocol import TRIAGE_SETTINGS_FILE
        from ansible_collections.synap.ops.plugins.plugin_utils.triage import summary_of, triage, with_commands

        hosts = {answer["host"] for answer in look.answers}
        self.begin()  # the look can finish before it is told it began
        self.loading.join()
        try:
            settings = json.loads((look.folder / TRIAGE_SETTINGS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # the playbook's verdict comes a moment later
        if self.rules is None or len(hosts) != 1 or not isinstance(settings, dict):
            return None  # a verdict per host of a fleet is the playbook's
        sources = {answer["look_up"]: answer["result"] for answer in look.answers}
        verdict = with_commands(triage(self.rules, sources, settings, order=self.scenarios), self.inventory_label)
        return {"triage": verdict}, summary_of(verdict)


def _record(folder) -> dict:
    from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import load_record

    try:
        record = load_record(folder) if folder else None
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def verdict_of(record: dict) -> dict | None:
    """The triage's verdict as its playbook recorded it (the Investigate note's data); None when the run ended
    before it."""
    for entry in reversed(record.get("timeline") or []):
        triage = (entry.get("data") or {}).get("triage")
        if isinstance(triage, dict):
            return triage
    return None


def show(record: dict, incidents_dir) -> None:
    from rich.console import Console

    from synap_play.outcome_view import summary
    from synap_play.progress import markup_safe

    verdict = verdict_of(record)
    if verdict is None:  # the run failed or was stopped before its verdict: the run's own summary says why
        summary(record, incidents_dir)
        return
    console = Console(stderr=True, highlight=False)
    matched = verdict.get("matched") or []
    if matched:
        console.print(f"[bold yellow]{len(matched)} scenario(s) match[/], most likely first:")
    elif verdict.get("unknown"):
        console.print("[bold yellow]nothing matches, but not everything could be judged[/] (unknown is never healthy):")
    else:
        console.print("[bold green]healthy[/]: no scenario's findings, every rule judged")
    for rank, (match, command) in enumerate(zip(matched, verdict.get("commands") or [], strict=False), start=1):
        because = ", ".join(match.get("severity_because") or []) or "no higher level's condition holds"
        console.print(f"  {rank}. [bold]{markup_safe(match['scenario'])}[/]  {match['severity']} "
                      f"({markup_safe(match.get('severity_meaning') or '')}: {markup_safe(because)})")
        for line in match.get("evidence") or []:
            console.print(f"       - {markup_safe(line)}")
        console.print(f"       next: [bold]{markup_safe(command)}[/]")
    for entry in (verdict.get("unknown") or [])[:8]:
        console.print(f"  [yellow]?[/] {markup_safe(entry['scenario'])}: {markup_safe(entry['why'])}")
    console.print(f"record: {os.path.relpath(os.path.join(str(incidents_dir), record['id']))}/incident.json "
                  f"(exit {record.get('exit_code')})")
