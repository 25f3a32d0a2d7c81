"""Scenarios against broken targets, run for real (no replay, no docker): a proxy's HTML page where Inngest
should answer, a closed database port, a missing compose project, a rejected PostgreSQL password."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from targets import closed_port, make_inventory

SYNAP_PLAY = Path(sys.executable).parent / "synap-play"


class HtmlEverywhere(BaseHTTPRequestHandler):
    """A login page or proxy placeholder: 200 and HTML for every path and method."""

    def _answer(self):
        body = b"<html><head><title>Sign in</title></head><body>Sign in</body></html>"
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def html_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), HtmlEverywhere)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()




def run_scenario(scenario: str, inventory: Path, incidents: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run([str(SYNAP_PLAY), scenario, "--check", "-i", str(inventory), "--incidents-dir", str(incidents),
                           "--no-first-look", *extra], capture_output=True, text=True, timeout=300, check=False)
    records = sorted(incidents.glob("*/incident.json"))
    assert records, f"no incident record (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc, json.loads(records[-1].read_text(encoding="utf-8"))


def checks_of(record: dict) -> dict[str, str]:
    return {check["name"]: check["state"] for verification in (record.get("verifications") or {}).values()
            for check in verification.get("checks", [])}


def test_html_inngest_and_refused_database_are_not_healthy(tmp_path, html_server):
    inventory = make_inventory(tmp_path, synap_inngest_url=html_server,
                               synap_database_url=f"postgresql://postgres:x@127.0.0.1:{closed_port()}/synap")
    proc, record = run_scenario("worker-queue-backup", inventory, tmp_path / "incidents")
    checks = checks_of(record)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert checks["Inngest answers its API"] == "failed", checks
    assert checks["no queries running longer than 3 s"] == "unknown", checks
    assert "✓ no queries running longer than" not in proc.stderr
    assert [a for a in record["actions"] if a["status"] == "planned"] == []
    look_ups = {f["look_up"]: f for f in record["findings"] if f.get("look_up") and f.get("phase") == "Assess"}
    assert look_ups["inngest"]["details"].get("failure") == "not_understood", look_ups["inngest"]
    assert look_ups["db"]["details"].get("failure") == "refused", look_ups["db"]


@pytest.mark.parametrize("severity", ["P0", "P1"])
def test_rejected_password_plans_nothing(tmp_path, pg, severity):
    """pg_cluster sets scram-sha-256 for TCP: a wrong password is rejected, and nothing is restarted for that."""
    from pg_cluster import SUPERUSER

    inventory = make_inventory(tmp_path, synap_inngest_url=f"http://127.0.0.1:{closed_port()}",
                               synap_database_url=pg.dsn(user=SUPERUSER, password="not-the-password"))
    proc, record = run_scenario("database-connection-failure", inventory, tmp_path / "incidents",
                                "--severity", severity)
    planned = [a["task"] for a in record["actions"] if a["status"] == "planned"]
    assert planned == [], planned
    assert "Restart the API" not in proc.stderr
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert record["severity"] == severity
    notes = [entry.get("event", "") for entry in record["timeline"] if entry.get("phase") == "Investigate"]
    assert any(note.startswith("credentials rejected") for note in notes), notes
    assert checks_of(record)["PostgreSQL accepts synap-play's connection"] == "failed"
