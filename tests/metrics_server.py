"""A real HTTP API for the metrics tests: /metrics from a prometheus_client registry (or a fixed body), /health
as JSON with a chosen status, 404 otherwise; it records when it was first scraped."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, generate_latest


class MetricsServer:
    def __init__(self, metrics_body: bytes | None = None, health_status: int = 200):
        self.registry = CollectorRegistry()
        self.metrics_body = metrics_body
        self.health_status = health_status
        self.first_scrape = threading.Event()
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the base class's naming
                if self.path == "/metrics":
                    body = app.metrics_body if app.metrics_body is not None else generate_latest(app.registry)
                    self._send(200, body, "text/plain; version=0.0.4")
                    app.first_scrape.set()
                elif self.path == "/health":
                    self._send(app.health_status, b'{"status":"ok"}', "application/json")
                else:
                    self._send(404, b"not found", "text/plain")

            def _send(self, status, body, content_type):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.address}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
