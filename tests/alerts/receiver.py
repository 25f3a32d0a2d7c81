"""A real local HTTP receiver for webhook tests: records every POST; some paths answer with errors on purpose."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

from local_server import LocalServer


class Receiver(LocalServer):
    """POST /ok -> 200 and recorded; POST /broken -> 500 and recorded."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append({"path": self.path, "content_type": self.headers.get("Content-Type"),
                                 "body": json.loads(body or b"null")})
                status = 500 if self.path.startswith("/broken") else 200
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"boom")

            def log_message(self, *args):
                pass

        super().__init__(Handler)
