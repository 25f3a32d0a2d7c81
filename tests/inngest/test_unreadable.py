"""inngest_info against servers that cannot be read: an HTML page for every path, a closed port, a silent one.

Each is a finding (never a task failure) with ``reachable`` false, the failure kind, and every figure null.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

PAGE = b"<!doctype html><html><head><title>Synap</title></head><body>Dashboard</body></html>"
# Every field a part fills; all null when the server was not read.
FIGURES = ("queue_depth", "app_registered", "functions", "run_counts", "runs", "stuck_runs", "stuck_count",
           "failed_event_ids", "events", "event_counts", "events_matched", "events_scanned", "events_truncated")
PARTS = ["health", "queue", "functions", "runs", "events"]


@contextlib.contextmanager
def html_server():
    """An HTTP server answering 200 with an HTML page for every path and method (a web UI's fallback)."""

    class Handler(BaseHTTPRequestHandler):
        def _page(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        do_GET = do_POST = _page

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def silent_server():
    """A port that accepts connections (kernel backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def closed_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def assert_not_read(result, failure):
    assert not result.get("failed") and result["changed"] is False, result
    assert result["reachable"] is False and result["failure"] == failure, result
    assert all(result[key] is None for key in FIGURES), {key: result[key] for key in FIGURES if result[key] is not None}
    assert list(result["failures"]) == PARTS


def test_html_for_every_path_is_not_understood(module):
    gather = ["health", "queue", "functions", "runs", "events"]
    with html_server() as url:
        result = module("inngest_info", {"url": url, "gather": gather, "run_statuses": ["RUNNING", "FAILED"]})
    assert_not_read(result, "not_understood")
    assert result["healthy"] is False and result["health"]["status_code"] == 200
    assert "/api/health trap" in result["msg"] and url in result["msg"]
    assert "HTML page" in result["failures"]["queue"] and "not JSON" in result["failures"]["functions"]


@pytest.mark.parametrize(("make_url", "failure"), [(closed_url, "refused"), (silent_server, "timeout")],
                         ids=["refused", "timeout"])
def test_no_answer_is_named_and_not_measured(module, make_url, failure):
    target = make_url()
    with target if isinstance(target, contextlib.AbstractContextManager) else contextlib.nullcontext(target) as url:
        result = module("inngest_info", {"url": url, "timeout": 1})
    assert_not_read(result, failure)
    assert result["healthy"] is None and result["health"]["status_code"] is None
    assert result["msg"].startswith(f"Inngest at {url} unreachable ({failure}): ")
    assert all(reason == "not read: Inngest did not answer GET /health" for part, reason in result["failures"].items()
               if part != "health")
