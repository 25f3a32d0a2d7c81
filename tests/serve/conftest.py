"""Fixtures for the serve tests: real `synap-play serve` processes against the fixture catalog and inventory."""

from __future__ import annotations

import pytest
from serve_helpers import P3_ALERT, Serve, webhook


@pytest.fixture
def start_serve(incidents_dir, tmp_path):
    """``start_serve(*args, token=None)`` -> a running Serve on a free loopback port; every one is stopped at the end.
    Runs write their flag file to tmp_path/flag (the fixture-flag scenario's mitigation)."""
    started: list[Serve] = []

    def start(*args: str, token: str | None = None) -> Serve:
        extra = list(args)
        if token is not None:
            token_file = tmp_path / "token"
            token_file.write_text(token + "\n")
            token_file.chmod(0o600)
            extra += ["--token-file", str(token_file)]
        serve = Serve(incidents_dir, tmp_path / f"serve-{len(started)}.log",
                      [*extra, "-e", f"flag_path={tmp_path / 'flag'}"], token=token)
        started.append(serve)
        return serve.start()

    yield start
    for serve in started:
        serve.close()


@pytest.fixture
def held(start_serve):
    """serve with a token, and an incident whose disruptive step waits for approval."""
    serve = start_serve(token="held-token-0123")
    [queued] = serve.post(webhook(P3_ALERT)).body["queued"]
    record = serve.wait_for_record(queued["incident"])
    assert record["status"] == "needs approval"
    return serve, queued["incident"]
