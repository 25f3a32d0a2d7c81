"""Bad input is refused in one line that names the cause and what to do, with the documented exit code, no
traceback, no record or a closed one, and no secret of the inventory in any file of the record.

The CLI runs in-process against a catalog of the fixture playbooks (tests/fixtures/playbooks) and an inventory
written per test, whose DSN password and Inngest signing key must never reach the incidents folder.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from synap_play.cli import cli

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_PLAYBOOKS = ROOT / "tests" / "fixtures" / "playbooks"
DB_PASSWORD = "robust-dsn-pw-81c3"
SIGNING_KEY = "signkey-robust-4f2a9e"
SECRETS = (DB_PASSWORD, SIGNING_KEY)
ID = "20261129T031500Z-fixture-flag-3fa2c1"


class World:
    """A catalog, an alert mapping, an inventory and an incidents folder of one test, and ways to use them."""

    def __init__(self, base: Path):
        self.base = base
        self.incidents = base / "incidents"
        self.flag = base / "flag"
        self.catalog = base / "catalog.yml"
        self.catalog.write_text(yaml.safe_dump({"scenarios": [
            {"name": "fixture-flag", "title": "Fixture flag", "severity": "P1", "alerts": ["FixtureAlert"],
             "playbook": str(FIXTURE_PLAYBOOKS / "flag.yml")},
            {"name": "fixture-needs", "title": "Fixture with endpoints", "severity": "P2", "alerts": ["NeedsAlert"],
             "playbook": str(FIXTURE_PLAYBOOKS / "flag.yml"), "requires": ["synap_database_url", "synap_inngest_url"]},
        ]}), encoding="utf-8")
        self.alert_map = base / "alerts.yml"
        self.alert_map.write_text(yaml.safe_dump({"alerts": {"FixtureAlert": "fixture-flag",
                                                             "NeedsAlert": "fixture-needs"}}), encoding="utf-8")
        self.inventory = self.make_inventory("inventory")
        self.binary = base / "binary.dat"
        self.binary.write_bytes(bytes(range(256)) * 8)

    def make_inventory(self, name: str, **overrides) -> Path:
        folder = self.base / name
        (folder / "group_vars").mkdir(parents=True)
        (folder / "hosts.yml").write_text(yaml.safe_dump({"synap": {"hosts": {"fixture-host": {
            "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}),
            encoding="utf-8")
        settings = {"synap_database_url": f"postgresql://synap:{DB_PASSWORD}@127.0.0.1:5/synap",
                    "fixture_database_url": f"postgresql://synap:{DB_PASSWORD}@127.0.0.1:5/synap",
                    "synap_inngest_url": "http://127.0.0.1:1", "synap_inngest_signing_key": SIGNING_KEY}
        settings.update(overrides)
        settings = {k: v for k, v in settings.items() if v is not None}
        (folder / "group_vars" / "synap.yml").write_text(yaml.safe_dump(settings), encoding="utf-8")
        return folder

    def fill(self, argv) -> list[str]:
        # Times are filled in when the case runs, not when it is collected: a suite takes minutes.
        values = {"{inv}": self.inventory, "{bin}": self.binary, "{base}": self.base, "{flag}": self.flag,
                  "{in-10-minutes}": _in(10)}
        filled = []
        for part in argv:
            for key, value in values.items():
                part = part.replace(key, str(value))
            filled.append(part)
        return filled

    def run(self, *argv: str, input: bytes | str | None = None, catalog: bool = True):
        argv = self.fill(argv)
        if catalog:
            argv += ["--catalog", str(self.catalog)]
        if "--incidents-dir" not in argv:
            argv += ["--incidents-dir", str(self.incidents)]
        return CliRunner().invoke(cli, argv, input=input)

    def records(self) -> list[dict]:
        """The readable records (a test may plant unreadable ones)."""
        found = []
        for path in sorted(self.incidents.glob("*/incident.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("id"), str):
                found.append(record)
        return found


@pytest.fixture
def world(tmp_path) -> World:
    return World(tmp_path)


def refused(world: World, result, code: int, message: str, *, records: int = 0, status: str | None = None) -> None:
    """The exit code, no traceback, the message (a regex), the record's state, and no secret anywhere."""
    output = result.output
    assert result.exit_code == code, output
    assert "Traceback" not in output and "internal error" not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert re.search(message, output), output
    if code == 2:
        lines = [line for line in output.splitlines() if re.search(message, line)]
        assert lines, f"the cause is not on one line: {output}"
    found = world.records()
    assert len(found) == records, [r.get("status") for r in found]
    for record in found:
        assert record["status"] != "running" and record["ended_at"], record["status"]
        if status:
            assert record["status"] == status
    for secret in SECRETS:
        assert secret not in output
    if world.incidents.is_dir():
        for path in world.incidents.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for secret in SECRETS:
                    assert secret.encode() not in data, f"{secret} reached {path}"


# -- options of a run -------------------------------------------------------------------------------
def _in(minutes: int) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat(timespec="seconds")


USAGE = [
    ("unknown-scenario", ["nosuch", "-i", "{inv}"], r"unknown scenario 'nosuch'; run 'synap-play list'"),
    ("uninstalled-run", ["run", "nosuch"], r"unknown scenario 'nosuch'"),
    ("no-scenario", ["run"], r"Missing argument 'SCENARIO'"),
    ("bad-severity", ["fixture-flag", "--severity", "P9"], r"Invalid value for '--severity'"),
    ("bad-output", ["fixture-flag", "--output", "xml"], r"Invalid value for '--output'"),
    ("bad-strategy", ["fixture-flag", "--strategy", "fast"], r"Invalid value for '--strategy'"),
    ("negative-wait-lock", ["fixture-flag", "--wait-lock", "-1"], r"Invalid value for '--wait-lock'"),
    ("unknown-option", ["fixture-flag", "--colour"], r"No such option '--colour'"),
    ("extra-var-no-value", ["fixture-flag", "-i", "{inv}", "-e", "novalue"],
     r"extra var 'novalue' is not key=value; use -e key=value or -e @file.yml"),
    ("extra-var-bad-name", ["fixture-flag", "-i", "{inv}", "-e", "1bad=x"], r"extra var '1bad=x' is not key=value"),
    ("extra-var-broken-mapping", ["fixture-flag", "-i", "{inv}", "-e", "{broken: [1"],
     r"extra vars '\{broken: \[1' are not a valid JSON/YAML mapping"),
    ("extra-var-unclosed-quote", ["fixture-flag", "-i", "{inv}", "-e", "a='open"],
     r"cannot be split into key=value pairs \(No closing quotation\); check the quotes"),
    ("extra-var-missing-file", ["fixture-flag", "-i", "{inv}", "-e", "@{base}/absent.yml"],
     r"extra vars file \S+absent.yml cannot be read: No such file or directory"),
    ("extra-var-binary-file", ["fixture-flag", "-i", "{inv}", "-e", "@{bin}"],
     r"extra vars file \S+binary.dat is not a text file \(not UTF-8 at byte 128\); give a YAML or JSON file"),
    ("extra-var-folder", ["fixture-flag", "-i", "{inv}", "-e", "@{base}"],
     r"extra vars file \S+ cannot be read: Is a directory"),
    ("extra-var-list-file", ["fixture-flag", "-i", "{inv}", "-e", "@{base}/list.yml"],
     r"extra vars file \S+list.yml must hold a mapping of names to values"),
    ("extra-var-broken-file", ["fixture-flag", "-i", "{inv}", "-e", "@{base}/broken.yml"],
     r"extra vars file \S+broken.yml is not valid YAML or JSON"),
    ("started-at-words", ["fixture-flag", "-i", "{inv}", "--started-at", "yesterday"],
     r"--started-at 'yesterday' is not an ISO-8601 time such as 2026-11-29T03:15:00Z"),
    ("started-at-no-zone", ["fixture-flag", "-i", "{inv}", "--started-at", "2026-11-29T03:15:00"],
     r"needs a time zone, such as Z or \+01:00"),
    ("started-at-2099", ["fixture-flag", "-i", "{inv}", "--started-at", "2099-01-01T00:00:00Z"],
     r"--started-at '2099-01-01T00:00:00Z' is in the future \(now is \S+Z\); give when the incident started"),
    ("started-at-in-10-minutes", ["fixture-flag", "-i", "{inv}", "--started-at", "{in-10-minutes}"], r"is in the future"),
    ("limit-empty", ["fixture-flag", "-i", "{inv}", "--limit", ""],
     r"--limit is empty; give a host or group pattern"),
    ("limit-blank", ["fixture-flag", "-i", "{inv}", "--limit", "  "], r"--limit is empty"),
    ("limit-garbage", ["fixture-flag", "-i", "{inv}", "--limit", "[[::!!&&"],
     r"--limit '\[\[::!!&&' is not a host pattern: .* is not a host or group name"),
    ("limit-empty-part", ["fixture-flag", "-i", "{inv}", "--limit", "synap,,x"],
     r"--limit 'synap,,x' is not a host pattern: it has an empty part"),
    ("limit-bad-regex", ["fixture-flag", "-i", "{inv}", "--limit", "~web[("],
     r"--limit '~web\[\(' is not a host pattern: the regular expression"),
    ("limit-unknown-host", ["fixture-flag", "-i", "{inv}", "--limit", "no-such-host"],
     r"--limit no-such-host matches no host of inventory \S+ \(hosts: fixture-host\)"),
    ("limit-excludes-all", ["fixture-flag", "-i", "{inv}", "--limit", "synap:!fixture-host"],
     r"--limit synap:!fixture-host matches no host of inventory"),
    ("limit-missing-file", ["fixture-flag", "-i", "{inv}", "--limit", "@{base}/absent.txt"],
     r"--limit @\S+absent.txt: the file \S+ does not exist"),
    ("incidents-dir-in-proc", ["fixture-flag", "-i", "{inv}", "-e", "flag_path={flag}", "--incidents-dir", "/proc/x"],
     r"--incidents-dir /proc/x: no record can be written there \(No such file or directory\); give a writable folder"),
    ("incidents-dir-under-a-file", ["fixture-flag", "-i", "{inv}", "-e", "flag_path={flag}",
                                    "--incidents-dir", "{bin}/x"],
     r"--incidents-dir \S+binary.dat/x: no record can be written there \(Not a directory\)"),
    ("incidents-dir-is-a-file", ["fixture-flag", "-i", "{inv}", "--incidents-dir", "{bin}"],
     r"Invalid value for '--incidents-dir'.*is a file"),
    ("inventory-unknown-name", ["fixture-flag", "-i", "nosuch"], r"inventory 'nosuch' not found; use one of"),
    ("inventory-missing-path", ["fixture-flag", "-i", "{base}/absent"], r"inventory path \S+absent does not exist"),
    ("inventory-empty-name", ["fixture-flag", "-i", ""], r"-i '' names no inventory"),
    ("inventory-dot-dot", ["fixture-flag", "-i", ".."], r"-i '\.\.' names no inventory"),
]


@pytest.mark.parametrize(("argv", "message"), [case[1:] for case in USAGE], ids=[case[0] for case in USAGE])
def test_bad_options_of_a_run_are_usage_errors(world, argv, message):
    (world.base / "list.yml").write_text("- a\n- b\n", encoding="utf-8")
    (world.base / "broken.yml").write_text("a: [1\n", encoding="utf-8")
    refused(world, world.run(*argv, catalog=argv[0] != "run" or len(argv) > 1), 2, message)


# -- inventories ---------------------------------------------------------------------------------------
def _broken_file(world: World) -> str:
    path = world.base / "broken.yml"
    path.write_text("---\nsynap:\n  hosts:\n    fixture-host: {a: [1\n", encoding="utf-8")
    return str(path)


def _broken_group_vars(world: World) -> str:
    (world.inventory / "group_vars" / "synap.yml").write_text("synap_database_url: x\nsynap_api_url: [\n",
                                                              encoding="utf-8")
    return str(world.inventory)


def _broken_group_vars_beside_file(world: World) -> str:
    _broken_group_vars(world)
    return str(world.inventory / "hosts.yml")


def _binary_file(world: World) -> str:
    path = world.base / "hosts.yml"
    path.write_bytes(world.binary.read_bytes())
    return str(path)


def _empty_file(world: World) -> str:
    path = world.base / "empty.yml"
    path.write_text("---\n", encoding="utf-8")
    return str(path)


def _no_database_url(world: World) -> str:
    return str(world.make_inventory("no-db", synap_database_url=None))


def _empty_env_lookup(world: World) -> str:
    return str(world.make_inventory("env", synap_database_url="{{ lookup('ansible.builtin.env', 'SYNAP_ROBUST_NO_DB') }}"))


def _empty_inngest_url(world: World) -> str:
    return str(world.make_inventory("no-inngest", synap_inngest_url=""))


def _no_synap_group(world: World) -> str:
    folder = world.make_inventory("elsewhere")
    (folder / "hosts.yml").write_text("web:\n  hosts:\n    web-1: {ansible_connection: local}\n", encoding="utf-8")
    return str(folder)


INVENTORIES = [
    ("broken-yaml-file", "fixture-flag", _broken_file,
     r"broken.yml line 5, column \d+: not valid YAML \(.*\); fix it, then check with 'ansible-inventory"),
    ("broken-group-vars", "fixture-flag", _broken_group_vars,
     r"group_vars/synap.yml line 3, column \d+: not valid YAML"),
    ("broken-group-vars-beside-a-file", "fixture-flag", _broken_group_vars_beside_file,
     r"group_vars/synap.yml line 3, column \d+: not valid YAML"),
    ("binary-inventory", "fixture-flag", _binary_file, r"hosts.yml is not a text file \(not UTF-8 at byte 128\)"),
    ("empty-inventory", "fixture-flag", _empty_file, r"inventory \S+empty.yml has no hosts; check it with"),
    ("no-database-url", "fixture-needs", _no_database_url,
     r"inventory \S+no-db: host fixture-host has no synap_database_url( \(DATABASE_URL is not set in the "
     r"environment\))?; set it in group_vars \(see inventory/staging\)"),
    ("empty-env-lookup", "fixture-needs", _empty_env_lookup,
     r"host fixture-host has no synap_database_url \(SYNAP_ROBUST_NO_DB is not set in the environment\); "
     r"set it in group_vars"),
    ("empty-inngest-url", "fixture-needs", _empty_inngest_url,
     r"host fixture-host has no synap_inngest_url \(it is empty\); set it in group_vars"),
    ("no-host-in-target-group", "fixture-needs", _no_synap_group,
     r"inventory \S+elsewhere: there is no host of 'synap', which fixture-needs runs on"),
]


@pytest.mark.parametrize(("scenario", "make", "message"), [case[1:] for case in INVENTORIES],
                         ids=[case[0] for case in INVENTORIES])
def test_broken_inventories_are_refused_before_the_run(world, monkeypatch, scenario, make, message):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SYNAP_ROBUST_NO_DB", raising=False)
    refused(world, world.run(scenario, "-i", make(world), "-e", "flag_path={flag}"), 2, message)
    assert not world.flag.exists()


def test_preflight_is_quick_for_the_lab_inventory():
    from ansible_collections.synap.ops.plugins.plugin_utils.catalog import load_catalog

    from synap_play.preflight import preflight

    catalog = load_catalog(ROOT / "playbooks" / "scenarios.yml")
    began = time.perf_counter()
    for scenario in catalog.values():
        found = preflight(scenario, ROOT / "inventory" / "lab", "lab", None, {})
        assert found.targets == ["synap-lab"] and found.reader == "yaml"
    assert (time.perf_counter() - began) / len(catalog) < 0.3


def test_an_inventory_file_is_read_alone_not_its_folder(world):
    """-i FILE: the file and the group_vars beside it; junk elsewhere in its folder is neither read nor a problem."""
    folder = world.base / "mixed"
    (folder / "junk").mkdir(parents=True)
    for index in range(200):
        (folder / "junk" / f"blob-{index}.yml").write_bytes(world.binary.read_bytes())
    (folder / "hosts.yml").write_text((world.inventory / "hosts.yml").read_text(), encoding="utf-8")
    (folder / "group_vars").mkdir()
    (folder / "group_vars" / "synap.yml").write_text((world.inventory / "group_vars" / "synap.yml").read_text(),
                                                     encoding="utf-8")
    result = world.run("fixture-flag", "-i", str(folder / "hosts.yml"), "-e", "flag_path={flag}", "--yes")
    refused(world, result, 0, r"resolved — exit 0", records=1, status="resolved")


# -- incident ids and records --------------------------------------------------------------------------
def _outside(world: World) -> Path:
    """A record outside the incidents folder, where ../outside/x would lead."""
    outside = world.base / "outside" / "x"
    outside.mkdir(parents=True)
    (outside / "incident.json").write_text(json.dumps({"id": "x", "scenario": "fixture-flag", "status": "resolved",
                                                       "ended_at": "2026-11-29T03:20:00Z"}), encoding="utf-8")
    world.incidents.mkdir()
    return outside


NOT_AN_ID = r"is not an incident id \(YYYYMMDDTHHMMSSZ-<scenario>-<6 hex>, or the start of one\)"
IDS = [
    ("show-traversal", ["show", "../outside/x"], NOT_AN_ID),
    ("show-absolute", ["show", "/etc/passwd"], NOT_AN_ID),
    ("show-absolute-record", ["show", "{base}/outside/x"], NOT_AN_ID),
    ("show-empty", ["show", ""], NOT_AN_ID),
    ("show-glob", ["show", "2026*"], NOT_AN_ID),
    ("show-missing", ["show", ID], rf"no incident '{ID}' in \S+; run 'synap-play incidents'"),
    ("postmortem-traversal", ["postmortem", "../outside/x"], NOT_AN_ID),
    ("postmortem-absolute", ["postmortem", "{base}/outside/x"], NOT_AN_ID),
    ("postmortem-missing", ["postmortem", ID], rf"no incident '{ID}'"),
    ("replay-traversal", ["replay", "../outside/x"], NOT_AN_ID),
    ("replay-missing", ["replay", ID], rf"no incident '{ID}'"),
]


@pytest.mark.parametrize(("argv", "message"), [case[1:] for case in IDS], ids=[case[0] for case in IDS])
def test_bad_incident_ids_touch_nothing_outside(world, monkeypatch, argv, message):
    outside = _outside(world)
    monkeypatch.chdir(world.incidents)  # ../outside/x from here is the record outside
    refused(world, world.run(*argv, catalog=False), 2, message)
    assert sorted(p.name for p in outside.iterdir()) == ["incident.json"]


def test_a_record_folder_linking_outside_is_not_shown(world):
    outside = _outside(world)
    (world.incidents / ID).symlink_to(outside, target_is_directory=True)
    refused(world, world.run("show", ID, catalog=False), 2, rf"no incident '{ID}'", records=1)


@pytest.mark.parametrize("content", [b"[1, 2]", b'{"id": "20261129T0', b"", bytes(range(256)), b'{"no": "id"}'],
                         ids=["array", "truncated", "empty", "binary", "no-id"])
def test_unreadable_records_are_named_and_the_rest_listed(world, content):
    good = world.incidents / ID
    good.mkdir(parents=True)
    (good / "incident.json").write_text(json.dumps({"id": ID, "scenario": "fixture-flag", "severity": "P1",
                                                    "status": "resolved", "started_at": "2026-11-29T03:15:00Z",
                                                    "ended_at": "2026-11-29T03:20:00Z"}))
    bad = world.incidents / "20261130T000000Z-fixture-flag-000000"
    bad.mkdir()
    (bad / "incident.json").write_bytes(content)
    result = world.run("incidents", catalog=False)
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert ID in result.output
    assert re.search(rf"incident record \S+{bad.name}/incident.json cannot be read \(.+\); it is not listed",
                     result.stderr), result.stderr
    shown = world.run("show", bad.name, "--output", "json", catalog=False)
    if content in (b"[1, 2]", b'{"no": "id"}'):
        assert shown.exit_code == 0  # valid JSON: shown as it is
    else:
        refused(world, shown, 2, rf"incident record \S+{bad.name} cannot be read", records=1)


@pytest.mark.parametrize(("value", "message"), [("-1", r"-1 is not in the range x>=1"), ("0", r"0 is not in the range"),
                                                ("many", r"'many' is not a valid integer")])
def test_incidents_count_must_be_positive(world, value, message):
    refused(world, world.run("incidents", "-n", value, catalog=False), 2, message)


# -- alert payloads ------------------------------------------------------------------------------------
def payload(*alerts: dict, status: str = "firing", version: str = "4") -> str:
    entries = [{"status": a.get("status", status), "labels": {"alertname": a["name"], "severity": "warning"},
                "annotations": {"summary": "firing"}, "startsAt": a.get("starts_at", "2026-11-29T03:15:00.1234567Z"),
                "endsAt": "0001-01-01T00:00:00Z", "fingerprint": a.get("fingerprint", "f" * 16)} for a in alerts]
    return json.dumps({"version": version, "status": status, "receiver": "synap-play", "alerts": entries})


def alert(world: World, body: str | bytes | None, *extra: str, name: str | None = None):
    argv = ["alert", *([name] if name else ["--payload", "-"]), "-i", str(world.inventory), "--alert-map",
            str(world.alert_map), "-e", f"flag_path={world.flag}", *extra]
    return world.run(*argv, input=body)


PAYLOADS = [
    ("not-json", "this is not json", r"payload is not JSON: Expecting value at line 1 column 1"),
    ("binary", bytes(range(256)) * 4, r"payload is not UTF-8 text \(byte 128 of 1024\); give an Alertmanager"),
    ("empty", "", r"payload is empty; give an Alertmanager webhook body"),
    ("json-array", "[1, 2]", r"payload must be a JSON object with 'version', 'status' and 'alerts'"),
    ("wrong-version", payload({"name": "FixtureAlert"}, version="3"), r"payload version '3' is not supported"),
    ("no-alerts", json.dumps({"version": "4", "status": "firing", "alerts": []}), r"payload has no 'alerts' list"),
    ("bad-status", json.dumps({"version": "4", "status": "burning", "alerts": [{}]}),
     r"payload status 'burning' must be 'firing' or 'resolved'"),
    ("no-alertname", json.dumps({"version": "4", "status": "firing", "alerts": [{"labels": {}}]}),
     r"alerts\[0\] has no labels.alertname"),
    ("bad-starts-at", payload({"name": "FixtureAlert", "starts_at": "soon"}),
     r"alerts\[0\].startsAt 'soon' is not an RFC 3339 time"),
    ("nested-too-deep", "[" * 200_000 + "]" * 200_000, r"payload is nested too deeply"),
    ("unknown-alerts-only", payload({"name": "NobodyKnows"}), r"no firing alert maps to an installed scenario"),
]


@pytest.mark.parametrize(("body", "message"), [case[1:] for case in PAYLOADS], ids=[case[0] for case in PAYLOADS])
def test_malformed_payloads_are_usage_errors(world, body, message):
    refused(world, alert(world, body), 2, message)


def test_a_binary_payload_file_is_a_usage_error(world):
    result = world.run("alert", "--payload", "{bin}", "-i", "{inv}", "--alert-map", str(world.alert_map))
    refused(world, result, 2, r"payload is not UTF-8 text \(byte 128 of 2048\)")


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_a_payload_over_the_cap_is_refused_with_its_size(world, via):
    from ansible_collections.synap.ops.plugins.plugin_utils.alerts import MAX_PAYLOAD_BYTES

    body = b" " * (MAX_PAYLOAD_BYTES + 2 * 2**20)
    if via == "file":
        path = world.base / "huge.json"
        path.write_bytes(body)
        result = world.run("alert", "--payload", str(path), "-i", "{inv}", "--alert-map", str(world.alert_map))
    else:
        result = alert(world, body)
    refused(world, result, 2, r"payload is 12.0 MB, over the cap of 10 MB; send the alerts in smaller groups")


def test_an_unknown_alert_name_is_a_usage_error(world):
    refused(world, alert(world, None, name="NobodyKnows"), 2,
            r"unknown alert 'NobodyKnows'; map it to a scenario in \S+alerts.yml \(known: FixtureAlert, NeedsAlert\)")


def test_resolved_alerts_only_run_nothing(world):
    refused(world, alert(world, payload({"name": "FixtureAlert"}, status="resolved")), 0,
            r"nothing to run: 1 resolved alert\(s\)")


@pytest.mark.parametrize(("extra", "message"), [
    (["--started-at", "2099-01-01T00:00:00Z"], r"--started-at '2099-01-01T00:00:00Z' is in the future"),
    (["-e", "@{bin}"], r"is not a text file"),
    (["--limit", "[[::!!&&"], r"is not a host pattern"),
    (["--incidents-dir", "{bin}/x"], r"no record can be written there \(Not a directory\)"),
], ids=["future-started-at", "binary-extra-vars", "garbage-limit", "incidents-dir-under-a-file"])
def test_bad_options_of_an_alert_run_nothing(world, extra, message):
    refused(world, alert(world, payload({"name": "FixtureAlert"}), *extra), 2, message)
    assert not world.flag.exists()


def test_a_payload_is_refused_whole_when_one_scenario_cannot_start(world, monkeypatch):
    """FixtureAlert's scenario could run, NeedsAlert's lacks synap_database_url: nothing runs at all."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    world.inventory = world.make_inventory("no-db", synap_database_url=None)
    result = alert(world, payload({"name": "FixtureAlert"}, {"name": "NeedsAlert"}))
    refused(world, result, 2, r"host fixture-host has no synap_database_url")
    assert not world.flag.exists()


def test_five_thousand_alerts_for_one_scenario_are_one_run(world):
    alerts = [{"name": "FixtureAlert", "fingerprint": f"{index:016x}"} for index in range(5000)]
    result = alert(world, payload(*alerts), "--yes")
    refused(world, result, 0, r"FixtureAlert \(5000 alerts\) -> fixture-flag at P1", records=1, status="resolved")
    [record] = world.records()
    assert len(record["alerts"]) == 5000


def test_a_future_starts_at_counts_from_receipt_with_a_note(world):
    before = datetime.now(UTC)
    result = alert(world, payload({"name": "FixtureAlert", "starts_at": "2099-01-01T00:00:00Z"}), "--check")
    refused(world, result, 3, r"FixtureAlert \(f{16}\): startsAt 2099-01-01T00:00:00Z is in the future; the incident "
                              r"counts from \S+Z, when the alert was received", records=1)
    [record] = world.records()
    started = datetime.fromisoformat(record["started_at"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= started <= datetime.now(UTC)
    assert record["duration_seconds"] >= 0
    assert "is in the future" in record["alerts"][0]["note"]


@pytest.mark.parametrize("command", ["alert", "run"])
def test_no_first_look_and_strategy_reach_the_run(world, monkeypatch, command):
    seen = {}

    def execute(self):
        seen.update(first_look=self.request.first_look, strategy=self.request.strategy)
        return 0

    monkeypatch.setattr("synap_play.session.IncidentRun.execute", execute)
    if command == "alert":
        result = alert(world, None, "--no-first-look", "--strategy", "linear", name="FixtureAlert")
    else:
        result = world.run("fixture-flag", "-i", "{inv}", "--no-first-look", "--strategy", "linear")
    assert result.exit_code == 0, result.output
    assert seen == {"first_look": False, "strategy": "linear"}
