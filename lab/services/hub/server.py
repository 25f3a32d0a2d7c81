"""Stand-in for the Hub Protocol external service: a search/enrichment API the lab's api calls.

The `external-down` fault stops this container, so the api's dependency really fails.
"""

from __future__ import annotations

import argparse
import hashlib
import urllib.parse

from synaplab import JsonHandler, serve


class HubHandler(JsonHandler):
    def handle_request(self, method: str) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path == "/health":
            self.send_json(200, {"status": "ok"})
        elif parsed.path == "/v1/search" and method == "GET":
            query = urllib.parse.parse_qs(parsed.query).get("q", [""])[0]
            digest = hashlib.sha256(query.encode()).hexdigest()
            self.send_json(200, {"query": query, "suggestions": [f"{query} {digest[i:i + 4]}" for i in (0, 4, 8)]})
        else:
            self.send_json(404, {"error": "not found"})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Hub Protocol stand-in")
    parser.add_argument("--port", type=int, default=3100)
    serve(HubHandler, parser.parse_args().port, "hub")
