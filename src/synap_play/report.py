"""report.md: a post-mortem draft rendered from the incident record."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from synap_play.incident import iso, parse_iso

TEMPLATES = Path(__file__).parent / "templates"
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


def render_report(record: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True, undefined=jinja2.ChainableUndefined)
    env.filters["index_candidates"] = index_candidates
    env.filters["tojson_pretty"] = lambda value: json.dumps(value, indent=2, default=str)
    env.filters["without"] = lambda mapping, key: {k: v for k, v in (mapping or {}).items() if k != key}
    due = iso(parse_iso(record["started_at"]) + timedelta(hours=48))
    return env.get_template("report.md.j2").render(r=record, due=due)


def write_report(record: dict[str, Any], folder: Path) -> Path:
    path = folder / "report.md"
    path.write_text(render_report(record), encoding="utf-8")
    return path
