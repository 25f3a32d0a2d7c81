# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""report.md: a post-mortem draft rendered from the incident record, and free text made safe to show."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import COLLECTION_ROOT, iso, parse_iso
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import REPORT_FILE

TEMPLATES = COLLECTION_ROOT / "roles" / "incident" / "templates"
# Terminal control in free text (an operator name, an alert summary, a task message): whole escape sequences
# (CSI, the OSC/DCS string kinds, two-byte escapes), then any other C0 or C1 character. Each sequence is matched
# from its own ESC, so the scan is linear.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]?|[\]P_^X][^\x07\x1b]*(?:\x07|\x1b\\)?|[ -/]*[0-~]?)"
                   r"|\x9b[0-?]*[ -/]*[@-~]?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Whitespace other than the space: each would end a list item or a table row, or misalign a terminal line.
_BREAKS = re.compile(r"[\t\n\v\f\r\x85\u2028\u2029]+")
_SEQ_SCAN = re.compile(r"Seq Scan on (?P<table>[\w.]+)")
_FILTER = re.compile(r"Filter: ")
# Equality on a parameter or a literal: the conditions an index serves best.
_EQUALITY = re.compile(r"\(?(\w+) = (?:\$\d+|'[^']*'(?:::\w+)?|\d+)\)")


def index_candidates(plan: list[str]) -> list[str]:
    """Columns a sequential scan filters on, as CREATE INDEX suggestions for a person to weigh (never run)."""
    candidates, table = [], None
    for line in plan or []:
        if scan := _SEQ_SCAN.search(line):
            table = scan.group("table")
        elif table and _FILTER.search(line) and (columns := _EQUALITY.findall(line)):
            candidate = f"CREATE INDEX CONCURRENTLY ON {table} ({', '.join(dict.fromkeys(columns))})"
            if candidate not in candidates:
                candidates.append(candidate)
            table = None
    return candidates


def strip_control(value: Any) -> str:
    """``value`` as one line of plain text: line breaks become spaces, terminal control goes."""
    text = _ANSI.sub("", str(value))
    return _CONTROL.sub("", _BREAKS.sub(" ", text))


def escape_markdown(value: Any, cell: bool = False) -> str:
    """Free text for report.md: one line with no control characters, so it cannot end a list item or a table row,
    and in a table cell (``cell``) no bare "|" either, so it cannot add a column."""
    text = strip_control(value)
    return text.replace("|", "\\|") if cell else text


def markdown_environment():
    """The templates' Jinja environment: free text goes through the ``md`` (list items, headings) and ``md_cell``
    (table cells) filters."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True, undefined=jinja2.ChainableUndefined)
    env.filters["md"] = escape_markdown
    env.filters["md_cell"] = lambda value: escape_markdown(value, cell=True)
    return env


def render_report(record: dict[str, Any]) -> str:
    env = markdown_environment()
    env.filters["index_candidates"] = index_candidates
    env.filters["tojson_pretty"] = lambda value: json.dumps(value, indent=2, default=str)
    env.filters["without"] = lambda mapping, key: {k: v for k, v in (mapping or {}).items() if k != key}
    due = iso(parse_iso(record["started_at"]) + timedelta(hours=48))
    return env.get_template("report.md.j2").render(r=record, due=due)


def write_report(record: dict[str, Any], folder: Path) -> Path:
    path = folder / REPORT_FILE
    path.write_text(render_report(record), encoding="utf-8")
    return path
