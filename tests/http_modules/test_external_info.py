"""external_info against real HTTP servers on free local ports: healthy, answering 503, too slow, and closed."""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

# The URL helper is imported directly (a pure function; conftest makes the collection importable); modules run
# through the conftest runner.
from ansible_collections.synap.ops.plugins.module_utils.redact import redact_url

# Long enough that running the checks one after another would clearly show in the total time.
ANSWER_DELAY = 1.5
SLOW_TIMEOUT = 2.0
SLOW_SERVER_DELAY = 5.0


class ServiceHandler(BaseHTTPRequestHandler):
    """GET /?status=N&delay=S answers N after S seconds."""

    def do_GET(self):  # noqa: N802 - the base class's naming
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        time.sleep(float(query.get("delay", ["0"])[0]))
        body = b'{"status": "ok"}'
        try:
            self.send_response(int(query.get("status", ["200"])[0]))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up waiting, which is the point of the slow endpoint

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture
def service_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ServiceHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port():
    """A port nothing listens on: bound once to get a free number, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_reports_each_endpoint_and_checks_them_at_the_same_time(module, service_url, closed_port):
    endpoints = [
        {"name": "billing", "url": f"{service_url}/health?delay={ANSWER_DELAY}"},
        {"name": "search", "url": f"{service_url}/health?status=503&delay={ANSWER_DELAY}"},
        {"name": "hub-protocol", "url": f"{service_url}/health?delay={SLOW_SERVER_DELAY}", "timeout": SLOW_TIMEOUT},
        {"name": "mail", "url": f"http://127.0.0.1:{closed_port}/health", "timeout": 3},
    ]
    started = time.monotonic()
    result = module("external_info", {"endpoints": endpoints})
    elapsed = time.monotonic() - started

    assert "failed" not in result and result["changed"] is False, result
    by_name = {entry["name"]: entry for entry in result["endpoints"]}
    assert [entry["name"] for entry in result["endpoints"]] == ["billing", "search", "hub-protocol", "mail"]

    billing = by_name["billing"]
    assert billing["ok"] is True and billing["reachable"] is True and billing["status"] == 200, billing
    assert billing["error"] is None and ANSWER_DELAY <= billing["latency_seconds"] < ANSWER_DELAY + 1

    assert billing["failure"] is None

    search = by_name["search"]
    assert search["ok"] is False and search["reachable"] is True and search["status"] == 503, search
    assert search["error"] == "HTTP 503" and search["failure"] == "http_error"

    hub = by_name["hub-protocol"]
    assert hub["ok"] is False and hub["reachable"] is False and hub["status"] is None, hub
    assert hub["error"] == "timed out after 2 s" and hub["failure"] == "timeout"
    assert SLOW_TIMEOUT <= hub["latency_seconds"] < SLOW_TIMEOUT + 1

    mail = by_name["mail"]
    assert mail["reachable"] is False and mail["error"] == "connection refused", mail
    assert mail["failure"] == "refused" and mail["status"] is None

    assert result["failing"] == ["search", "hub-protocol", "mail"]
    assert result["reachable"] is False and result["failure"] == "http_error"
    assert result["failures"] == {"search": f"{search['url']}: HTTP 503", "hub-protocol": f"{hub['url']}: timed out after 2 s",
                                  "mail": f"{mail['url']}: connection refused"}
    assert result["slowest"]["name"] == "hub-protocol"
    assert result["msg"] == (
        f"billing: ok {billing['latency_seconds']:.3f} s; search ({search['url']}): HTTP 503 in "
        f"{search['latency_seconds']:.3f} s; hub-protocol ({hub['url']}): unreachable (timeout: timed out after 2 s); "
        f"mail ({mail['url']}): unreachable (refused: connection refused)"
    )
    # One after another this would take 1.5 + 1.5 + 2 = 5 s; together about the slowest (2 s) plus start-up.
    serial = 2 * ANSWER_DELAY + SLOW_TIMEOUT
    assert SLOW_TIMEOUT <= elapsed < serial - 1.0, f"took {elapsed:.2f} s: the checks did not run concurrently"


def test_expected_status_and_check_mode(module, service_url):
    endpoints = [{"name": "queue", "url": f"{service_url}/?status=204", "expect_status": 204},
                 {"name": "web", "url": f"{service_url}/?status=204"},
                 {"name": "api", "url": f"{service_url}/?status=200", "expect_status": 204}]
    result = module("external_info", {"endpoints": endpoints}, check=True)
    assert result["changed"] is False, result
    assert [entry["ok"] for entry in result["endpoints"]] == [True, False, False]
    assert result["endpoints"][1]["error"] == "HTTP 204"
    assert result["endpoints"][2]["error"] == "HTTP 200, expected 204"
    assert [entry["failure"] for entry in result["endpoints"]] == [None, "not_understood", "not_understood"]
    assert result["failing"] == ["web", "api"]


def test_unresolvable_host_is_a_finding(module):
    result = module("external_info", {"endpoints": [{"name": "ghost", "url": "http://no-such-host.invalid/", "timeout": 3}]})
    assert "failed" not in result, result
    assert result["endpoints"][0]["reachable"] is False and result["endpoints"][0]["failure"] == "dns"
    assert result["endpoints"][0]["error"].startswith("cannot resolve the host name"), result
    assert result["reachable"] is False and result["failure"] == "dns"


def test_no_endpoints(module):
    result = module("external_info", {"endpoints": []})
    assert result["msg"] == "no external endpoints to check" and result["slowest"] is None, result
    assert (result["reachable"], result["failure"], result["failures"], result["failing"]) == (True, None, {}, [])


@pytest.mark.parametrize(
    ("endpoints", "message"),
    [
        ([{"name": "a", "url": "http://x/"}, {"name": "a", "url": "http://y/"}],
         "endpoint names must be unique; given more than once: a"),
        ([{"name": "a", "url": "x.example/health"}],
         "endpoint a: url must start with http:// or https://, got 'x.example/health'"),
        ([{"name": "a", "url": "http://x/", "timeout": 0}],
         "endpoint a: timeout must be a positive number of seconds, got 0"),
    ],
)
def test_bad_input_is_one_line(module, endpoints, message):
    result = module("external_info", {"endpoints": endpoints})
    assert result["failed"] is True and result["msg"] == message, result


def test_password_in_url_is_masked(module, closed_port):
    url = f"http://ops:s3cret@127.0.0.1:{closed_port}/health"
    result = module("external_info", {"endpoints": [{"name": "private", "url": url}]})
    assert "s3cret" not in str(result)
    assert result["endpoints"][0]["url"] == f"http://ops:********@127.0.0.1:{closed_port}/health"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://hub:3100/health", "http://hub:3100/health"),
        ("https://user@hub/health", "https://user@hub/health"),
        ("https://user:pw@hub/health?x=1", "https://user:********@hub/health?x=1"),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown
