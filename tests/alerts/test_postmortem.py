"""`synap-play postmortem ID`: the draft from a real run's record."""

from __future__ import annotations

from alert_helpers import alertmanager_payload
from click.testing import CliRunner

from synap_play.alert_cli import postmortem


def test_postmortem_from_an_alert_run_that_needed_a_human(synap_alert, incidents_dir):
    payload = alertmanager_payload({"name": "FixtureAlert", "severity": "critical",
                                    "starts_at": "2026-11-29T03:15:00Z"})
    assert synap_alert(payload=payload).exit_code == 3  # P1: the disruptive fix waits for approval
    [folder] = list(incidents_dir.iterdir())
    result = CliRunner().invoke(postmortem, [folder.name[:22], "--incidents-dir", str(incidents_dir)])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith(f"# Post-mortem: Fixture flag file — {folder.name}\n")
    assert "**Post-mortem meeting due by 2026-12-01T03:15:00Z** (within 48 hours of the start)." in text
    assert "| Severity | P1 — partial outage, significant degradation |" in text
    # The timeline starts when the alert started, then follows the run's own events.
    timeline = text.split("## Timeline\n", 1)[1].split("\n\n", 1)[0].splitlines()
    # (with the alerts on the record, the entry also names them: "incident started: alert FixtureAlert firing")
    assert timeline[0].startswith("- `2026-11-29T03:15:00Z` — incident started")
    assert timeline[1].endswith("_Acknowledge_ — Acknowledge phase")
    assert any("action needs approval: Mitigate | Create the flag file" in line for line in timeline)
    assert "| Find out why the flag went missing | _owner_ | _date_ |" in text
    notes = text.split("## Update the runbook\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert notes[0] == ("- [ ] 'Mitigate | Create the flag file' (disruptive) waited for approval at P1: say in the "
                        "runbook who approves it and how fast.")
    assert notes[1] == ("- [ ] After the runbook's mitigations the checks still failed (flag file exists): the "
                        "runbook's mitigation is not enough for this case.")
    assert notes[2].startswith("- [ ] The incident reached escalation level 4 (CTO/VP Engineering)")
    assert "- [ ] Schedule post-mortem within 48 hours (by 2026-12-01T03:15:00Z)" in text
    assert (folder / "postmortem.md").read_text() == text


def test_postmortem_of_an_unknown_incident_exits_2(incidents_dir):
    result = CliRunner().invoke(postmortem, ["20261129T0315", "--incidents-dir", str(incidents_dir)])
    assert result.exit_code == 2
    assert result.stderr.strip() == \
        f"Error: no incident '20261129T0315' in {incidents_dir}; run 'synap-play incidents'"
