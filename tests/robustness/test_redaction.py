"""The redactor on its own: every secret form, taught by the inventory or not, is masked in every place it is
applied (text, nested data, the artifacts copy, the saved record), ordinary text is left readable, and the work
is linear in the input and bounded, however long a single value is."""

from __future__ import annotations

import json
import time

import pytest
from ansible_collections.synap.ops.plugins.module_utils.redact import CUT_MARK, MASK, MAX_VALUE, Redactor
from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import IncidentRecord

from synap_play.runner import _keep_artifacts

# What an inventory and the environment teach the redactor (session.py reads both the same way).
TAUGHT_VARIABLES = {
    "synap_database_url": "postgresql://synap:taught-db-pw-7c1@db.internal:5432/synap",
    "inngest_signing_key": "signkey-prod-taught0123456789abcdef",
    "inngest_event_key": "taught-event-key-5e9a",
    "synap_notify_channels": [
        {"name": "ops", "webhook_url": "https://hooks.slack.com/services/T0TAUGHT/B0TAUGHT/taughtwebhooktoken42"},
        {"name": "on-call", "type": "pagerduty", "routing_key": "taughtpagerdutyroutingkey0123456"},
    ],
}
TAUGHT_ENVIRONMENT = {"PGPASSWORD": "taught-env-pgpw-31", "HOME": "/home/alice"}

# (text, the secrets that must go, what must stay readable)
SECRET_FORMS = {
    # URL passwords, taught and untaught
    "taught dsn": ("could not connect to postgresql://synap:taught-db-pw-7c1@db.internal:5432/synap",
                   ["taught-db-pw-7c1"], ["postgresql://synap:", "@db.internal:5432/synap"]),
    "taught password alone": ("retrying with taught-db-pw-7c1 after a timeout", ["taught-db-pw-7c1"], ["retrying with"]),
    "taught environment password": ("PGPASSWORD is taught-env-pgpw-31 here", ["taught-env-pgpw-31"], ["PGPASSWORD is"]),
    "untaught postgresql url": ("dsn postgresql://app:untaught-pg-pw1@db2.internal:5432/app?sslmode=require",
                                ["untaught-pg-pw1"], ["postgresql://app:", "@db2.internal:5432/app?sslmode=require"]),
    "untaught postgres url": ("postgres://reporter:untaught-pg-pw2@10.0.0.7/synap",
                              ["untaught-pg-pw2"], ["postgres://reporter:", "@10.0.0.7/synap"]),
    "untaught redis url, no user": ("cache redis://:untaught-redis-pw3@cache.internal:6379/0",
                                    ["untaught-redis-pw3"], ["redis://:", "@cache.internal:6379/0"]),
    "untaught redis url": ("redis://default:untaught-redis-pw4@cache.internal", ["untaught-redis-pw4"],
                           ["redis://default:", "@cache.internal"]),
    "untaught http url": ("GET http://ops:untaught-http-pw5@hub.internal:8080/health -> 200", ["untaught-http-pw5"],
                          ["http://ops:", "@hub.internal:8080/health"]),
    "untaught https url": ("'https://ops:untaught-https-pw6@hub.example.com/health'", ["untaught-https-pw6"],
                           ["https://ops:", "@hub.example.com/health"]),
    # key=value and "key": "value"
    "password=": ("login password=kv-pw-01 user=alice", ["kv-pw-01"], ["login password=", "user=alice"]),
    "passwd=": ("passwd=kv-pw-02 host=db.internal", ["kv-pw-02"], ["passwd=", "host=db.internal"]),
    "secret=": ("client_secret=kv-pw-03 client_id=synap-web", ["kv-pw-03"], ["client_secret=", "client_id=synap-web"]),
    "token=": ("GET /export?token=kv-pw-04 HTTP/1.1", ["kv-pw-04"], ["GET /export?token=", "HTTP/1.1"]),
    "api_key=": ("API_KEY=kv-pw-05", ["kv-pw-05"], ["API_KEY="]),
    "signing_key:": ("signing_key: kv-pw-06", ["kv-pw-06"], ["signing_key:"]),
    "event_key quoted": ('event_key="kv pw 07" sent', ["kv pw 07", "pw 07"], ["event_key=", "sent"]),
    "single quoted": ("admin_password='kv pw 08' ok", ["kv pw 08", "pw 08"], ["admin_password=", "ok"]),
    "json": ('{"user": "alice", "password": "kv json pw 09", "host": "db.internal"}', ["kv json pw 09", "pw 09"],
             ['"user": "alice"', '"password": ', '"host": "db.internal"']),
    "json compact": ('{"api_key":"kv-pw-10","region":"eu"}', ["kv-pw-10"], ['"region":"eu"']),
    "json number": ('{"token": 424242}', ["424242"], ['"token": ']),
    "python repr": ("{'db_password': 'kv pw 11', 'user': 'alice'}", ["kv pw 11", "pw 11"], ["'user': 'alice'"]),
    "yaml": ("synap_admin_password: kv-pw-12\nsynap_admin_user: alice", ["kv-pw-12"], ["synap_admin_user: alice"]),
    "log line": ("2026-11-30T03:15:02Z ERROR auth failed for alice token=kv-pw-13 from 10.0.0.9", ["kv-pw-13"],
                 ["ERROR auth failed for alice", "from 10.0.0.9"]),
    "escaped json in json": (json.dumps({"stdout": 'ok => {"password": "kv pw 14", "changed": false}'}),
                             ["kv pw 14", "pw 14"], ['\\"changed\\": false']),
    # libpq keyword DSNs
    "libpq": ("host=db.internal port=5432 user=synap password=kv-pw-15 dbname=synap", ["kv-pw-15"],
              ["host=db.internal port=5432 user=synap", "dbname=synap"]),
    "libpq quoted": ("host=db.internal password='kv pw 16' dbname=synap", ["kv pw 16", "pw 16"],
                     ["host=db.internal", "dbname=synap"]),
    # bearer tokens
    "authorization header": ("Authorization: Bearer xyz", ["xyz"], ["Authorization: Bearer "]),
    "authorization in json": ('{"headers": {"Authorization": "Bearer eyJhbGci.eyJzdWIi.c2lnbmF0dXJl"}}',
                              ["eyJhbGci", "c2lnbmF0dXJl"], ['"Authorization": "Bearer ']),
    "bearer alone": ("curl -H 'Bearer abcdefgh12345678' https://hub.example.com/api", ["abcdefgh12345678"],
                     ["https://hub.example.com/api"]),
    # Inngest keys
    "taught signing key": ("signed with signkey-prod-taught0123456789abcdef", ["taught0123456789abcdef"], ["signed with"]),
    "untaught signing key": ("INNGEST signkey-test-untaught0099aa rejected", ["untaught0099aa"], ["rejected"]),
    "taught event key": ("sent the event with key taught-event-key-5e9a", ["taught-event-key-5e9a"], ["sent the event"]),
    # webhook URLs: the token in the path
    "taught webhook": ("POST https://hooks.slack.com/services/T0TAUGHT/B0TAUGHT/taughtwebhooktoken42 timed out",
                       ["taughtwebhooktoken42"], ["POST ", "timed out"]),
    "untaught slack webhook": ("POST https://hooks.slack.com/services/T000/B000/XXXXuntaughtslack: 404",
                               ["XXXXuntaughtslack"], ["https://hooks.slack.com/services/T000/B000/", ": 404"]),
    "untaught discord webhook": ("https://discord.com/api/webhooks/123456/untaught-discord-tok/slack",
                                 ["untaught-discord-tok"], ["https://discord.com/api/webhooks/123456/"]),
    "untaught mattermost webhook": ("https://chat.example.com/hooks/untaughtmattermost26 -> 500",
                                    ["untaughtmattermost26"], ["https://chat.example.com/hooks/", "-> 500"]),
    # PagerDuty routing keys
    "taught routing key": ("PagerDuty refused taughtpagerdutyroutingkey0123456 for on-call",
                           ["taughtpagerdutyroutingkey0123456"], ["PagerDuty refused ", " for on-call"]),
    "untaught routing key in json": ('{"routing_key": "untaughtroutingkey00112233445566", "event_action": "resolve"}',
                                     ["untaughtroutingkey00112233445566"], ['"event_action": "resolve"']),
}

# Ordinary text: nothing in it is a secret, and it comes back exactly as it went in.
ORDINARY = [
    "the password was rotated yesterday; 12 secrets and 3 tokens are due next week",
    "the bearer of bad news",
    "user=alice host=db.internal port=5432 dbname=synap",
    "postgresql://synap@db.internal:5432/synap",
    "https://hub.example.com/health?region=eu",
    "http://hub.internal:8080/path/to/x@y",
    "[fixture-host] ok: Assess | Check the database (3.2 s)",
    '{"user": "alice", "host": "db.internal", "count": 4}',
    "a long word: " + "w" * 5000,
]


@pytest.fixture
def redactor() -> Redactor:
    taught = Redactor()
    taught.learn_from_environment(TAUGHT_ENVIRONMENT)
    taught.learn_from(TAUGHT_VARIABLES)
    return taught


def assert_masked(out: str, secrets: list[str], readable: list[str]) -> None:
    assert MASK in out
    for secret in secrets:
        assert secret not in out, f"{secret!r} left in {out!r}"
    for part in readable:
        assert part in out, f"{part!r} no longer readable in {out!r}"


@pytest.mark.parametrize("text,secrets,readable", SECRET_FORMS.values(), ids=SECRET_FORMS.keys())
def test_text(redactor, text, secrets, readable):
    assert_masked(redactor.text(text), secrets, readable)


@pytest.mark.parametrize("text,secrets,readable", SECRET_FORMS.values(), ids=SECRET_FORMS.keys())
def test_nested_data_and_lists(redactor, text, secrets, readable):
    record = {"timeline": [{"event": text, "data": {"lines": [text, {"deep": text}], "count": 3}}], "ok": True}
    out = redactor.data(record)
    assert out["ok"] is True and out["timeline"][0]["data"]["count"] == 3
    for value in (out["timeline"][0]["event"], *out["timeline"][0]["data"]["lines"][:1],
                  out["timeline"][0]["data"]["lines"][1]["deep"]):
        assert_masked(value, secrets, readable)


def test_values_under_secret_names_are_masked_whole(redactor):
    out = redactor.data({
        "admin_password": "anything at all", "DB_PASSWD": "x", "webhook_url": "https://example.com/anything",
        "api_token": "t", "INNGEST_EVENT_KEY": "short", "tokens": ["one-value", "another-value"],
        "private_key": "-----BEGIN KEY-----", "routing_key": "any routing key", "password": 1234, "secret": None,
        "user": "alice", "host": "db.internal",
    })
    assert out == {
        "admin_password": MASK, "DB_PASSWD": MASK, "webhook_url": MASK, "api_token": MASK, "INNGEST_EVENT_KEY": MASK,
        "tokens": [MASK, MASK], "private_key": MASK, "routing_key": MASK, "password": 1234, "secret": None,
        "user": "alice", "host": "db.internal",
    }


def test_the_artifacts_copy(redactor, tmp_path):
    source, copy = tmp_path / "artifacts", tmp_path / "incident" / "artifacts"
    (source / "job_events").mkdir(parents=True)
    texts = [text for text, _, _ in SECRET_FORMS.values()]
    (source / "stdout").write_text("\n".join(texts) + "\n")
    for number, text in enumerate(texts):
        event = {"event": "runner_on_ok", "stdout": text, "event_data": {"res": {"msg": text, "lines": [text]}}}
        (source / "job_events" / f"{number}-event.json").write_text(json.dumps(event))
    (source / "binary").write_bytes(b"\xff\xfe taught-db-pw-7c1")
    _keep_artifacts(source, copy, redactor.text)
    assert not (copy / "binary").exists()
    stdout = (copy / "stdout").read_text()
    for _, secrets, readable in SECRET_FORMS.values():
        assert_masked(stdout, secrets, readable)
    for number, (_, secrets, _) in enumerate(SECRET_FORMS.values()):
        kept = (copy / "job_events" / f"{number}-event.json").read_text()
        event = json.loads(kept)  # still JSON after masking
        for secret in secrets:
            assert secret not in kept
        assert MASK in event["stdout"] and MASK in event["event_data"]["res"]["msg"]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_stays_as_it_is(redactor, text):
    assert redactor.text(text) == text
    assert redactor.data({"msg": text, "lines": [text]}) == {"msg": text, "lines": [text]}


def test_short_values_are_never_learned():
    taught = Redactor(["abc", "pw1"])
    taught.learn_from({"password": "xyz", "api_token": "ok"})
    assert taught.text("abc pw1 xyz ok") == "abc pw1 xyz ok"


def test_a_secret_learned_after_a_text_was_masked_is_masked_in_it_next_time():
    # Masked text is remembered (a record is masked whole at every save); a new secret must not meet an old answer.
    taught = Redactor(["first-secret-1"])
    text = "first-secret-1 then later-secret-2"
    assert taught.text(text) == f"{MASK} then later-secret-2"
    taught.learn("later-secret-2")
    assert taught.text(text) == f"{MASK} then {MASK}"
    assert taught.data({"msg": text, "lines": (text,)}) == {"msg": f"{MASK} then {MASK}",
                                                            "lines": [f"{MASK} then {MASK}"]}


def test_data_of_every_kind_is_masked_as_before():
    class Tagged(str):  # Ansible hands over str subclasses (tagged values)
        pass

    class ReadOnly(dict):
        pass

    taught = Redactor(["kind-secret-9"])
    long_text = "x" * 5000 + " kind-secret-9"  # longer than what is remembered: masked afresh each time
    data = ReadOnly(msg=Tagged("a kind-secret-9"), n=3, ok=True, none=None, ratio=0.5, long=long_text,
                    nested=[("kind-secret-9",)], api_token=Tagged("anything"))
    for _ in range(2):
        assert taught.data(data) == {"msg": f"a {MASK}", "n": 3, "ok": True, "none": None, "ratio": 0.5,
                                     "long": "x" * 5000 + f" {MASK}", "nested": [[MASK]], "api_token": MASK}


def test_a_url_is_learned_for_its_password_only_unless_it_is_the_secret():
    taught = Redactor()
    taught.learn_from({"database_url": "postgresql://synap:learned-pw-77@db.internal/synap",
                       "webhook": "https://chat.example.com/webhook/whole-url-secret"})
    out = taught.text("db.internal synap learned-pw-77 https://chat.example.com/webhook/whole-url-secret")
    assert out == f"db.internal synap {MASK} {MASK}"


def test_a_secret_made_of_mask_characters_cannot_grow_the_text():
    taught = Redactor(["****", "*****x", "hunter2-secret"])
    out = taught.text("hunter2-secret " * 1000)
    assert out == f"{MASK} " * 1000


# -- bounded: a value longer than the cap is cut, visibly, before it is scanned ------------------------------

def test_a_value_over_the_cap_is_cut_with_a_mark(redactor):
    value = "w" * (MAX_VALUE + 5000)
    out = redactor.data({"summary": value})["summary"]
    assert out == "w" * MAX_VALUE + CUT_MARK.format(5000)
    assert redactor.text(value) == out
    line = f"before {value} after"
    assert redactor.text(line) == f"before {out} after"
    assert redactor.text("v" * MAX_VALUE) == "v" * MAX_VALUE  # at the cap: kept whole


def test_a_cut_never_keeps_part_of_a_secret(redactor):
    for secret in ("taught-db-pw-7c1", "password=untaught-cut-pw"):
        value = "w" * (MAX_VALUE - 5) + secret + "w" * 5000
        for out in (redactor.text(value), redactor.data({"msg": value})["msg"]):
            assert secret[:5] not in out[MAX_VALUE - 10:], out[MAX_VALUE - 10:]
            assert "more characters cut]" in out


def test_a_cut_json_value_keeps_the_file_json(redactor, tmp_path):
    source = tmp_path / "artifacts"
    source.mkdir()
    event = {"stdout": "x" * (MAX_VALUE - 1) + "\\" + "y" * 100_000, "msg": "é" * 200_000, "password": "json-cut-pw",
             "quoted": "z" * (MAX_VALUE + 10) + '"end', "escapes": "a" * (MAX_VALUE - 3) + "\\" * 5 + '"end'}
    (source / "event.json").write_text(json.dumps(event))
    _keep_artifacts(source, tmp_path / "copy", redactor.text)
    kept = json.loads((tmp_path / "copy" / "event.json").read_text())
    assert kept["password"] == MASK
    assert kept["stdout"].endswith("more characters cut]") and kept["msg"].endswith("more characters cut]")
    assert kept["quoted"].endswith('more characters cut]"end') and kept["escapes"].endswith('cut]"end')


# -- linear: 1 MB in every place that redacts, well under a second -------------------------------------------

MEGABYTE = 1_000_000
HUGE = {
    "one unbroken word run": "a" * MEGABYTE,
    "many password= pairs": "password=x " * (MEGABYTE // 11),
    "a long url-ish run": "https://" + "h.a://b:c" * (MEGABYTE // 9),
    "a dotted run": "a." * (MEGABYTE // 2),
    "many url-ish words": "x.y.z://u:p:q " * (MEGABYTE // 14),
    "json with a huge value": json.dumps({"summary": "b" * MEGABYTE, "password": "huge-json-pw"}),
    "prose with secrets": "connect postgresql://u:pw-12345@db/x token=abc Authorization: Bearer xyz " * (MEGABYTE // 75),
}
LINEAR_BOUND = 1.0  # seconds; the quadratic patterns took hours on these


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


@pytest.mark.parametrize("text", HUGE.values(), ids=HUGE.keys())
def test_text_is_linear(redactor, text):
    assert timed(lambda: redactor.text(text)) < LINEAR_BOUND


@pytest.mark.parametrize("text", HUGE.values(), ids=HUGE.keys())
def test_data_is_linear(redactor, text):
    assert timed(lambda: redactor.data({"alerts": [{"summary": text}], "operator": text})) < LINEAR_BOUND


@pytest.mark.parametrize("text", HUGE.values(), ids=HUGE.keys())
def test_the_artifacts_copy_is_linear(redactor, text, tmp_path):
    source = tmp_path / "artifacts"
    source.mkdir()
    (source / "stdout").write_text(text)
    (source / "event.json").write_text(json.dumps({"stdout": text}))
    assert timed(lambda: _keep_artifacts(source, tmp_path / "copy", redactor.text)) < 2 * LINEAR_BOUND  # two files
    json.loads((tmp_path / "copy" / "event.json").read_text())


@pytest.mark.parametrize("text", HUGE.values(), ids=HUGE.keys())
def test_the_record_save_is_linear(redactor, text, tmp_path):
    incident = IncidentRecord.open(incident_id="20261130T031500Z-fixture-flag-0a1b2c", folder=tmp_path / "incident",
                        scenario="fixture-flag", title="Fixture flag file", severity="P1", inventory="hosts.yml",
                        operator=text, check_mode=False, approve_all=False, limit=None, follow_ups=[])
    incident.data["alerts"] = [{"name": "HighErrorRate", "summary": text}]
    assert timed(lambda: incident.save(redactor.data)) < LINEAR_BOUND
    record = json.loads((tmp_path / "incident" / "incident.json").read_text())
    for value in (record["operator"], record["alerts"][0]["summary"]):
        assert value.endswith("more characters cut]") and len(value) < 4 * MAX_VALUE  # masks may be longer


def test_the_record_is_compact_while_open_and_indented_once_closed(redactor, tmp_path):
    # A fleet's record is rewritten many times while the run goes: compact JSON is written by json's C encoder.
    from ansible_collections.synap.ops.plugins.plugin_utils import incident_outcome

    incident = IncidentRecord.open(incident_id="20261130T031500Z-fixture-flag-0a1b2d", folder=tmp_path / "incident",
                                   scenario="fixture-flag", title="Fixture flag file", severity="P1",
                                   inventory="hosts.yml", operator="alice", check_mode=True, approve_all=False,
                                   limit=None, follow_ups=[])
    path = incident.save(redactor.data)
    assert len(path.read_text().splitlines()) == 1 and json.loads(path.read_text())["status"] == "running"
    incident_outcome.close(incident, playbook_status="successful", rc=0)
    incident.save(redactor.data)
    assert path.read_text().startswith('{\n  "') and json.loads(path.read_text())["status"] != "running"
