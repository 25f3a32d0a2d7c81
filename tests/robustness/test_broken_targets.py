"""The real scenarios, with --check, against broken targets that the tests start and stop on 127.0.0.1: a refused
port, a server that never answers, HTML with 200, HTTP 500, a huge body, a rejected password and a database
without Synap's schema. Each run ends with a closed or honestly open record naming the source and why, never an
internal error, and the inventory's secrets reach no file of the record."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from targets import DB_PASSWORD, SIGNING_KEY, closed_port, make_inventory

SYNAP_PLAY = Path(sys.executable).parent / "synap-play"


class Broken(BaseHTTPRequestHandler):
    """Every path answers the way the server's `mode` says: html, 500, huge, or silence."""

    mode = "html"

    def do_GET(self):
        if self.mode == "silent":
            time.sleep(30)
            return
        status, kind, body = {
            "html": (200, "text/html", b"<html><body>Sign in</body></html>"),
            "500": (500, "application/json", b'{"error": "internal"}'),
            "huge": (200, "application/json", b'{"status": "' + b"x" * (3 * 2**20) + b'"}'),
        }[self.mode]
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the client stopped reading: that is the point of a huge body
            self.wfile.write(body)

    do_POST = do_PUT = do_GET

    def log_message(self, *args):
        pass


def serve(mode: str):
    handler = type(f"Broken_{mode}", (Broken,), {"mode": mode})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def run_check(scenario: str, inventory: Path, incidents: Path) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run([str(SYNAP_PLAY), scenario, "--check", "-i", str(inventory), "--incidents-dir",
                           str(incidents), "--no-first-look"], capture_output=True, text=True, timeout=240, check=False)
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output and "internal error" not in output, output[-3000:]
    [path] = sorted(incidents.glob("*/incident.json"))
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["status"] != "running" and record["ended_at"] and record["exit_code"] == proc.returncode
    for file in incidents.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            assert SIGNING_KEY.encode() not in data and DB_PASSWORD.encode() not in data, f"a secret reached {file}"
    assert SIGNING_KEY not in output and DB_PASSWORD not in output
    return proc, record


def failure_of(record: dict, look_up: str) -> str | None:
    found = [f for f in record["findings"] if f.get("look_up") == look_up and f.get("phase") == "Assess"]
    assert found, [f.get("look_up") for f in record["findings"]]
    return found[0]["details"].get("failure")


@pytest.mark.parametrize(("mode", "failure"), [
    ("refused", "refused"),
    ("silent", "timeout"),
    ("html", "not_understood"),
    ("500", "http_error"),
    # Regression: a 3 MB answer, quoted whole in the message, made the result too large to reach the record
    # (ansible-runner drops it), and the run ended "completed", exit 0.
    ("huge", "not_understood"),
])
def test_a_broken_inngest_is_named_and_never_healthy(tmp_path, mode, failure):
    server, url = (None, f"http://127.0.0.1:{closed_port()}") if mode == "refused" else serve(mode)
    try:
        proc, record = run_check("worker-queue-backup", make_inventory(tmp_path, synap_inngest_url=url),
                                 tmp_path / "incidents")
    finally:
        if server:
            server.shutdown()
            server.server_close()
    assert proc.returncode in (3, 6), proc.stderr[-3000:]
    assert record["status"] not in ("healthy", "resolved")
    assert failure_of(record, "inngest") == failure


@pytest.mark.parametrize(("target", "failure"), [("wrong-password", "auth_failed"), ("no-schema", None)])
def test_a_broken_database_is_named_and_never_healthy(tmp_path, pg, target, failure):
    from pg_cluster import SUPERUSER

    if target == "wrong-password":
        dsn = pg.dsn(user=SUPERUSER, password=DB_PASSWORD)
        proc, record = run_check("database-connection-failure", make_inventory(tmp_path, synap_database_url=dsn),
                                 tmp_path / "incidents")
        assert failure_of(record, "db") == failure
        assert proc.returncode == 3, proc.stderr[-3000:]
    else:  # PostgreSQL answers, but the database has no proposals table
        dsn = pg.dsn(db="postgres", user=SUPERUSER)
        proc, record = run_check("proposal-system-failure", make_inventory(tmp_path, synap_database_url=dsn),
                                 tmp_path / "incidents")
        assert proc.returncode in (3, 6), proc.stderr[-3000:]
        assert record["status"] not in ("healthy", "resolved")
