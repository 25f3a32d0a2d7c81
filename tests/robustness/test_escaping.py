"""Free text (the operator's name, alert names and summaries, notes, task messages) is escaped where it is shown:
in report.md and the post-mortem it cannot break a table or a list item, and on the terminal it carries no escape
sequence or control character of its own, and no rich markup."""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from ansible_collections.synap.ops.plugins.module_utils.redact import Redactor
from ansible_collections.synap.ops.plugins.plugin_utils.incident_report import escape_markdown, render_report, strip_control
from click.testing import CliRunner
from rich.console import Console

from synap_play.cli import cli
from synap_play.postmortem import render_postmortem
from synap_play.progress import Progress, markup_safe

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"

HOSTILE = "eve\n| x |\x1b[31m[bold]red\x1b[0m\r\x07"
# Any control character but the newline that ends a line of the document; ESC among them.
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")
UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def hostile(label: str) -> str:
    return f"{label} {HOSTILE} [/] tail"


def hostile_record() -> dict:
    at = "2026-11-30T03:15:00Z"
    return {
        "schema_version": 1, "id": "20261130T031500Z-fixture-flag-0a1b2c", "scenario": "fixture-flag",
        "title": "Fixture flag file", "severity": "P1", "inventory": "hosts.yml", "limit": None,
        "operator": HOSTILE, "check_mode": False, "approve_all": False, "started_at": "2026-11-30T03:10:00Z",
        "ended_at": "2026-11-30T03:16:00Z", "duration_seconds": 360.0, "status": "needs approval", "exit_code": 3,
        "phases": [{"name": "Acknowledge", "started_at": at, "ended_at": at}],
        "timeline": [{"at": at, "phase": "Acknowledge", "event": hostile("note"), "host": "db-1"},
                     {"at": at, "phase": "Investigate", "event": hostile("investigated"), "data": {"rows": 3}}],
        "findings": [{"at": at, "source": hostile("source"), "host": "db-1", "summary": hostile("finding")}],
        "actions": [{"at": at, "phase": "Mitigate", "task": hostile("task"), "host": "db-1", "status": "needs approval",
                     "class": "disruptive", "why": hostile("why"), "reason": hostile("reason"), "changed": False,
                     "plan": [hostile("plan line")], "summary": hostile("summary")}],
        "errors": [{"task": hostile("failed task"), "host": "db-2", "msg": hostile("error message")}],
        "verification": {"resolved": False, "state": "unresolved", "at": at, "checks": [
            {"name": hostile("check"), "ok": False, "state": "failed", "host": "db-1", "observed": hostile("observed")},
            {"name": "latency", "ok": False, "state": "unknown", "host": "db-2", "unknown_because": hostile("unknown")},
        ]},
        "hosts": {"db-1": {}, "db-2": {}},
        "escalation": {"level": 1, "contact": "on-call engineer", "elapsed_minutes": 6},
        "notifications": [{"at": at, "channel": hostile("channel"), "delivered": False, "error": hostile("webhook")}],
        "alerts": [{"name": hostile("alert name"), "severity": "critical", "starts_at": "2026-11-30T03:09:00Z",
                    "summary": hostile("alert summary")}],
        "follow_ups": [hostile("follow-up")],
    }


def test_markdown_escaping():
    assert escape_markdown(HOSTILE) == "eve | x |[bold]red "
    assert escape_markdown(HOSTILE, cell=True) == "eve \\| x \\|[bold]red "
    assert escape_markdown("a\r\nb\tc\u2028d") == "a b c d"
    assert escape_markdown("\x1b]0;title\x07\x1b(Bok\x9b2J") == "ok"
    assert escape_markdown(None) == "None" and escape_markdown(12.5) == "12.5"


def assert_well_formed(markdown: str) -> None:
    assert not CONTROL.search(markdown), repr(CONTROL.search(markdown))
    lines = markdown.splitlines()
    # Every table keeps its header's column count on every row.
    table: list[str] = []
    for line in [*lines, ""]:
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            columns = {len(UNESCAPED_PIPE.findall(row)) for row in table}
            assert len(columns) == 1, table
            table = []
    # Nothing a field held starts a line of its own: no injected row, no half of a broken item.
    for line in lines:
        assert not line.startswith(("| x", "x |", "[bold]red", " [/] tail")), line
    operator = [line for line in lines if line.startswith("| Operator |")]
    assert operator == ["| Operator | eve \\| x \\|[bold]red  |"]


REPORT_FIELDS = ("note", "investigated", "source", "finding", "task", "why", "reason", "plan line", "check",
                 "observed", "unknown", "channel", "webhook", "failed task", "error message", "follow-up")
POSTMORTEM_FIELDS = ("alert name", "alert summary", "note", "source", "finding", "task", "reason", "plan line", "check",
                     "failed task", "error message", "follow-up")


@pytest.mark.parametrize("render,fields", [(render_report, REPORT_FIELDS), (render_postmortem, POSTMORTEM_FIELDS)],
                         ids=["report", "postmortem"])
def test_the_drafts_stay_well_formed(render, fields):
    markdown = render(hostile_record())
    assert_well_formed(markdown)
    # Each field is shown whole on its item's line (or in its cell, with its pipes escaped).
    for label in fields:
        assert (f"{label} eve | x |[bold]red  [/] tail" in markdown
                or f"{label} eve \\| x \\|[bold]red  [/] tail" in markdown), label


def plain_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    # No colour of its own: any escape sequence in the output would have come from the input.
    return Console(file=out, width=400, color_system=None, force_terminal=False, highlight=False), out


def test_the_progress_line():
    console, out = plain_console()
    progress = Progress(console, "", started=time.monotonic())
    progress.line("failed", "red", "db-1\x1b[2J", hostile("task"), hostile("message"), bold=True)
    printed = out.getvalue()
    assert not CONTROL.search(printed.replace("\n", "")) and printed.count("\n") == 1
    assert "[db-1] task eve | x |[bold]red  [/] tail: message eve | x |[bold]red  [/] tail" in printed


def test_markup_safe():
    console, out = plain_console()
    console.print(f"[red]label[/]: {markup_safe(hostile('text'))}")
    assert out.getvalue() == "label: text eve | x |[bold]red  [/] tail\n"


def test_the_terminal_summary(tmp_path, capsys, monkeypatch):
    from synap_play.outcome_view import summary

    monkeypatch.setenv("COLUMNS", "400")  # one line per item, as on a wide terminal
    summary(hostile_record(), tmp_path)
    err = capsys.readouterr().err
    assert "\x1b" not in err and not CONTROL.search(err.replace("\n", ""))
    assert "task eve | x |[bold]red  [/] tail (disruptive)" in err
    assert "    - plan line eve | x |[bold]red  [/] tail" in err
    assert "check eve | x |[bold]red  [/] tail [db-1]" in err  # the host in brackets is shown, not read as a style
    assert "unknown: unknown eve | x |[bold]red  [/] tail" in err
    assert "error: failed task eve | x |[bold]red  [/] tail: error message eve | x |[bold]red  [/] tail" in err


def test_a_first_look_answer_before_the_live_display(capsys):
    from synap_play.live import LiveView

    view = LiveView(SimpleNamespace(quiet=False), Redactor().text, time.monotonic())
    view.show_answer("db-1\x1b[31m", hostile("look-up"), {"msg": hostile("answer")})
    err = capsys.readouterr().err
    assert not CONTROL.search(err.replace("\n", "")) and err.count("\n") == 1
    assert "[db-1] look-up eve | x |[bold]red  [/] tail: answer eve | x |[bold]red  [/] tail" in err


def test_the_approval_question(tmp_path, monkeypatch):
    from synap_play import approvals

    monkeypatch.setattr(approvals.click, "confirm", lambda *args, **kwargs: False)
    console, out = plain_console()
    desk = approvals.ApprovalDesk(tmp_path, SimpleNamespace(paused=contextlib.nullcontext), console)
    request = {"task": hostile("task"), "host": "db-1", "class": "disruptive", "severity": "P1",
               "reason": hostile("reason"), "why": hostile("why"), "plan": [hostile("plan line")]}
    assert desk._ask(request) is False
    printed = out.getvalue()
    assert not CONTROL.search(printed.replace("\n", ""))
    for label in ("task", "reason", "why: why", "- plan line"):
        assert f"{label} eve | x |[bold]red  [/] tail" in printed, label


def test_strip_control_is_linear():
    text = ("\x1b[" + "1;" * 500_000) + "\x1b]" + "t" * 500_000 + HOSTILE * 10_000
    started = time.perf_counter()
    strip_control(text)
    escape_markdown(text, cell=True)
    assert time.perf_counter() - started < 1.0


@pytest.mark.slow
def test_a_run_with_a_hostile_operator(tmp_path, monkeypatch):
    """The whole path: the operator's name goes through the playbook into the record, the report and the terminal."""
    monkeypatch.chdir(tmp_path)
    incidents = tmp_path / "incidents"
    result = CliRunner().invoke(cli, [
        "fixture-flag", "-i", str(FIXTURES / "inventory" / "hosts.yml"), "-e", f"flag_path={tmp_path / 'flag'}",
        "--operator", HOSTILE, "--catalog", str(FIXTURES / "scenarios.yml"), "--incidents-dir", str(incidents),
    ], env={"COLUMNS": "400"}, catch_exceptions=False)
    assert result.exit_code == 3, result.output
    assert "\x1b" not in result.output and "eve | x |[bold]red" in result.output
    [folder] = incidents.iterdir()
    record = json.loads((folder / "incident.json").read_text())
    assert record["operator"] == HOSTILE  # the record keeps what was given; only what shows it escapes it
    report = (folder / "report.md").read_text()
    assert not CONTROL.search(report)
    lines = report.splitlines()
    assert "| Operator | eve \\| x \\|[bold]red  |" in lines
    rows = [line for line in lines if line.startswith("|")]
    assert rows and all(len(UNESCAPED_PIPE.findall(row)) in (3, 4) for row in rows)  # 2 or 3 columns


@pytest.mark.slow
def test_a_run_with_a_100k_character_operator_finishes_in_seconds(tmp_path, monkeypatch):
    """Regression: an --operator of 100,000 characters ran for over 10 minutes (quadratic redaction) and left the
    record running. The bound only tells linear from quadratic; the run itself takes a few seconds."""
    monkeypatch.chdir(tmp_path)
    incidents = tmp_path / "incidents"
    started = time.perf_counter()
    result = CliRunner().invoke(cli, [
        "fixture-flag", "-i", str(FIXTURES / "inventory" / "hosts.yml"), "-e", f"flag_path={tmp_path / 'flag'}",
        "--operator", "o" * 100_000, "--check", "--catalog", str(FIXTURES / "scenarios.yml"),
        "--incidents-dir", str(incidents),
    ], catch_exceptions=False)
    assert time.perf_counter() - started < 60
    assert result.exit_code == 3, result.output[-2000:]
    [folder] = incidents.iterdir()
    record = json.loads((folder / "incident.json").read_text())
    assert record["status"] == "diagnosed" and (folder / "report.md").is_file()
