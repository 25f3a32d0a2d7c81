"""report.md: a post-mortem draft rendered from the incident record."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from synap_play.incident import iso, parse_iso

TEMPLATES = Path(__file__).parent / "templates"


def render_report(record: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True, undefined=jinja2.ChainableUndefined)
    due = iso(parse_iso(record["started_at"]) + timedelta(hours=48))
    return env.get_template("report.md.j2").render(r=record, due=due)


def write_report(record: dict[str, Any], folder: Path) -> Path:
    path = folder / "report.md"
    path.write_text(render_report(record), encoding="utf-8")
    return path
