"""serve's notes on an incident: what arrived for it and what serve did, one JSON object a line.

They live beside the record (``<incident>/alerts.jsonl``), not in it: the run's own process writes incident.json
while serve may be noting a repeat, and an appended line never races a rewritten file. ``webhook.json`` beside them
is the payload the run is given, kept so that a run queued when serve stopped can start after a restart.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

NOTES_FILE = "alerts.jsonl"
WEBHOOK_FILE = "webhook.json"


class Event:
    """The kinds of note, in the order an incident meets them."""

    QUEUED = "queued"  # a firing alert opened the incident; its run waits for a free slot
    REQUEUED = "requeued"  # serve started again with the run still waiting
    DEFERRED = "deferred"  # serve stopped before the run started
    STARTED = "started"  # the run's process started (pid)
    REPEAT = "repeat"  # Alertmanager sent the firing alert again: while the incident was open, or after_close
    RAISED = "raised"  # alerts more severe than the incident: a run at their severity took it over (its id)
    RESOLVED = "resolved"  # Alertmanager said the alert resolved
    ENDED = "ended"  # the run's process ended (exit code, status)
    # Written by `synap-play approve` (serve's API runs it) on the incident whose run held steps back.
    APPROVED = "approved"  # steps approved; the approval run that carries them out (its incident id)
    DECLINED = "declined"  # steps declined: they stay undone
    APPROVAL_ENDED = "approval_ended"  # the approval run ended (its status and exit code)


def append_note(folder: Path, entry: dict[str, Any]) -> None:
    """One line, written with one write() on an O_APPEND descriptor, so lines never interleave."""
    folder.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(entry, default=str, separators=(",", ":")) + "\n").encode()
    fd = os.open(folder / NOTES_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_notes(folder: Path) -> list[dict[str, Any]]:
    """Every note that can be read; a torn last line (serve killed mid-write) is left out."""
    try:
        text = (folder / NOTES_FILE).read_text(encoding="utf-8")
    except OSError:
        return []
    notes = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("event"), str):
            notes.append(entry)
    return notes


def read_record(folder: Path) -> dict[str, Any] | None:
    """The incident's record; None while its run has not written it (or it cannot be read)."""
    from synap_play import collection

    load_record = collection.module("plugins.plugin_utils.incident_record").load_record
    try:
        record = load_record(folder)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_webhook(folder: Path, body: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / WEBHOOK_FILE
    path.with_suffix(".tmp").write_bytes(body)
    os.replace(path.with_suffix(".tmp"), path)


def read_webhook(folder: Path) -> bytes | None:
    """The body kept for the run; the run itself validates it, as it does every payload."""
    try:
        return (folder / WEBHOOK_FILE).read_bytes()
    except OSError:
        return None
