"""`synap-play serve` over real HTTP: the token, the size cap, malformed webhooks, health, metrics, and the checks
made before it listens. Nothing here runs a scenario."""

from __future__ import annotations

import http.client
import json
import socket
import stat

import pytest
from click.testing import CliRunner
from serve_helpers import ALERT_MAP, CATALOG, INVENTORY, webhook

from synap_play.collection import load

load()
from ansible_collections.synap.ops.plugins.plugin_utils.alerts import (  # noqa: E402
    MAX_PAYLOAD_BYTES,
    PayloadError,
    decode_payload,
    parse_payload,
)

SERIES = ["synap_play_serve_alerts_received_total", "synap_play_serve_incidents_total",
          "synap_play_serve_alert_to_diagnosis_seconds", "synap_play_serve_alert_to_mitigation_seconds",
          "synap_play_serve_alert_to_verification_seconds", "synap_play_serve_runs_in_flight",
          "synap_play_serve_queue_length"]


def test_health_and_metrics_answer_and_name_every_series(start_serve):
    serve = start_serve()
    health = serve.get("/healthz")
    assert health.status == 200
    assert health.body == {"status": "ok", "runs_in_flight": 0, "queued": 0, "max_parallel": 2, "queue_size": 16}
    metrics = serve.get("/metrics")
    assert metrics.status == 200 and metrics.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    for name in SERIES:
        assert f"# TYPE {name} " in metrics.body, name
    assert "synap_play_serve_runs_in_flight 0.0" in metrics.body
    assert "synap_play_serve_queue_length 0.0" in metrics.body
    assert serve.get("/api/incidents").body == {"open": [], "recent": [], "unreadable": []}


def test_the_api_needs_the_token_health_and_metrics_do_not(start_serve):
    serve = start_serve(token="s3cret-token")
    body = webhook({"name": "FixtureAlert"})
    for token in (None, "wrong"):
        refused = serve.post(body, token=token)
        assert refused.status == 401
        assert refused.body == {"error": "missing or wrong bearer token (Authorization: Bearer <token of --token-file>)"}
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="synap-play"'
        assert serve.get("/api/incidents", token=token).status == 401
        assert serve.get("/api/incidents/20261202T060735Z-fixture-flag-abcdef", token=token).status == 401
    assert serve.get("/healthz", token=None).status == 200
    assert serve.get("/metrics", token=None).status == 200
    # With the token the request gets as far as the payload.
    assert serve.post(b'{"version": "3"}').status == 400
    assert serve.folders() == []
    assert "s3cret-token" not in serve.output()


@pytest.mark.parametrize("body", [
    b"",
    b"{not json",
    b"[]",
    b'{"version": "3", "status": "firing", "alerts": []}',
    b'{"version": "4", "status": "burning", "alerts": []}',
    b'{"version": "4", "status": "firing", "alerts": []}',
    b'{"version": "4", "status": "firing", "alerts": [{"labels": {}}]}',
    b'{"version": "4", "status": "firing", "alerts": [{"labels": {"alertname": "A"}, "startsAt": "yesterday"}]}',
    b'\xff\xfe{"version": "4"}',
])
def test_a_malformed_webhook_gets_400_with_the_intakes_own_reason(start_serve, body):
    serve = start_serve()
    reply = serve.post(body)
    with pytest.raises(PayloadError) as raised:  # the one intake `synap-play alert` and the EDA source use
        parse_payload(decode_payload(body))
    assert reply.status == 400
    assert reply.body == {"error": str(raised.value)}
    assert "\n" not in reply.body["error"]
    assert serve.folders() == []


def _raw_post(port: int, size: int, expect_continue: bool) -> tuple[int, dict]:
    """POST a body of ``size`` bytes with its Content-Length, as a sender that does (not) ask first."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.putrequest("POST", "/api/alerts")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(size))
        if expect_continue:
            connection.putheader("Expect", "100-continue")
            connection.endheaders()
        else:
            connection.endheaders()
            chunk = b" " * (1024 * 1024)
            sent = 0
            while sent < size:
                piece = chunk[: min(len(chunk), size - sent)]
                connection.send(piece)
                sent += len(piece)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.parametrize("expect_continue", [False, True], ids=["body-sent", "expect-100-continue"])
def test_a_body_over_the_cap_gets_413(start_serve, expect_continue):
    serve = start_serve()
    status, body = _raw_post(serve.port, MAX_PAYLOAD_BYTES + 1, expect_continue)
    assert status == 413
    assert body == {"error": "payload is over the cap of 10 MB; send the alerts in smaller groups (Alertmanager's "
                             "group_by / max_alerts)"}
    assert serve.get("/healthz").status == 200
    assert serve.folders() == []


def test_alerts_that_map_to_nothing_are_answered_and_run_nothing(start_serve):
    serve = start_serve()
    reply = serve.post(webhook({"name": "Mystery", "fingerprint": "m1"}))
    assert reply.status == 202
    assert reply.body == {"queued": [], "repeats": [], "resolved": [],
                          "ignored": [{"alert": "Mystery", "fingerprint": "m1", "reason": "no scenario maps it"}]}
    resolved = serve.post(webhook({"name": "FixtureAlert", "fingerprint": "r1"}, status="resolved"))
    assert resolved.status == 202
    assert resolved.body["resolved"] == [{"incident": None, "alert": "FixtureAlert", "fingerprint": "r1"}]
    assert serve.folders() == []
    metrics = serve.get("/metrics").body
    assert 'synap_play_serve_alerts_received_total{alertname="Mystery",status="firing"} 1.0' in metrics
    assert 'synap_play_serve_alerts_received_total{alertname="FixtureAlert",status="resolved"} 1.0' in metrics


def test_the_incident_api_refuses_what_is_not_an_incident_id(start_serve):
    serve = start_serve()
    assert serve.get("/api/incidents/..%2F..%2Fetc").status == 404
    missing = serve.get("/api/incidents/20261202T060735Z-fixture-flag-abcdef")
    assert missing.status == 404
    assert missing.body == {"error": f"no incident 20261202T060735Z-fixture-flag-abcdef in {serve.incidents_dir}"}
    assert serve.get("/api/incidents?last=0").body == {"error": "last must be a whole number from 1 to 500"}


# -- before it listens -------------------------------------------------------------------------------------------
def _serve_cli(*args: str, incidents_dir):
    from synap_play.cli import cli

    argv = ["serve", "--catalog", str(CATALOG), "--alert-map", str(ALERT_MAP), "-i", str(INVENTORY),
            "--incidents-dir", str(incidents_dir), *args]
    return CliRunner().invoke(cli, argv, catch_exceptions=False)


def test_a_non_loopback_address_needs_a_token(incidents_dir):
    result = _serve_cli("--listen", "0.0.0.0:9095", incidents_dir=incidents_dir)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: --listen 0.0.0.0:9095: without a token anyone who can reach this address could start runs; pass "
        "--token-file FILE (the bearer token Alertmanager sends), or listen on 127.0.0.1")


@pytest.mark.parametrize(("content", "message"), [
    (None, "Error: --token-file {path}: no such file; put the bearer token Alertmanager sends in it"),
    ("\n  \n", "Error: --token-file {path} is empty; put the bearer token Alertmanager sends in it"),
    ("two words", "Error: --token-file {path} holds more than one word; put the token alone in it"),
])
def test_a_token_file_that_gives_no_token_is_refused(incidents_dir, tmp_path, content, message):
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    result = _serve_cli("--token-file", str(path), incidents_dir=incidents_dir)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == message.format(path=path)


def test_an_address_in_use_is_one_line_and_a_readable_token_a_warning(incidents_dir, tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    token.chmod(0o644)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve_cli("--listen", f"127.0.0.1:{port}", "--token-file", str(token), incidents_dir=incidents_dir)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == (f"synap-play serve: warning: --token-file {token} is readable by every user of this machine "
                        f"(mode {stat.S_IMODE(token.stat().st_mode):04o}); chmod 600 it")
    assert lines[-1] == (f"Error: --listen 127.0.0.1:{port}: the address is already in use (another synap-play "
                         f"serve?); stop it or pick another port")


@pytest.mark.parametrize("listen", ["9095", "host:port", "127.0.0.1:70000"])
def test_a_malformed_listen_address_is_refused(incidents_dir, listen):
    result = _serve_cli("--listen", listen, incidents_dir=incidents_dir)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1].startswith(f"Error: --listen {listen!r}")


def test_scenarios_that_cannot_run_against_the_inventory_are_named_at_start(incidents_dir):
    broken = INVENTORY.parent / "broken.yml"
    with socket.socket() as taken:  # so that the command ends after its checks
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve_cli("--listen", f"127.0.0.1:{port}", "-i", str(broken), incidents_dir=incidents_dir)
    assert result.exit_code == 2
    [warning] = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warning.startswith(f"synap-play serve: warning: fixture-fail, fixture-flag, fixture-slow: {broken} l")
    assert warning.endswith("; their alerts are answered, and their runs refused until that is fixed")
