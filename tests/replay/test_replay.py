"""synap-play replay: every scenario's decision branches from recorded look-ups, and the recording loader.

Each cases file under cases/ is one `synap-play replay FILE --output json` (the real CLI, one playbook run whose
hosts are the cases). The runs start together in one fixture, so their Ansible work overlaps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import RunVar

from synap_play.replay import (
    Recording,
    ReplayError,
    case_results,
    from_cases,
    from_incident,
    load_recording,
    replay_inventory,
    unmet_expectations,
)

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases"
SYNAP_PLAY = Path(sys.executable).parent / "synap-play"
SCENARIOS = ["worker-queue-backup", "database-connection-failure", "high-error-rate", "elevated-latency",
             "proposal-system-failure"]
# Severity decides would-run/would-ask, never what is planned. Each replay costs a playbook start, so the extremes
# are replayed beside the file's own severity (worker-queue-backup's P1, database-connection-failure's P0).
SEVERITY_RUNS = {"worker-queue-backup": ["P0", "P3"], "database-connection-failure": ["P1", "P3"]}
# Severity decides would-run/would-ask, never what is planned: replayed at every severity, these cases (each
# branch of the scenario, and a rejected password) must plan the same mitigations.
# (Every case plays at the file's own severity; these few again at the others, since each replay costs a playbook.)
SEVERITY_CASES = {
    "worker-queue-backup": ["stuck-runs", "event-storm", "db-auth-failed"],
    "database-connection-failure": ["pool-exhausted", "auth-failed", "auth-failed-postgres-stopped",
                                    "auth-failed-api-failing"],
}


def _cases_file(scenario: str) -> Path:
    return CASES / f"{scenario}.yml"


def _replay_command(path: Path, incidents: Path, *extra: str) -> list[str]:
    return [str(SYNAP_PLAY), "replay", str(path), "--output", "json", "--incidents-dir", str(incidents), *extra]


def _environment(cases: int) -> dict[str, str]:
    # One fork per case: the cases are hosts of one play and each task runs for all of them at once.
    return dict(os.environ, ANSIBLE_FORKS=str(max(5, cases)))


@pytest.fixture(scope="module")
def replays(tmp_path_factory):
    """(scenario, severity) -> (exit code, the JSON it printed, stderr); severity None for the file's own."""
    runs = {}
    for scenario in SCENARIOS:
        path = _cases_file(scenario)
        count = len(yaml.safe_load(path.read_text(encoding="utf-8"))["cases"])
        runs[scenario, None] = (_replay_command(path, tmp_path_factory.mktemp("incidents")), count)
        for severity in SEVERITY_RUNS.get(scenario, []):
            if scenario in SEVERITY_CASES:
                chosen = [arg for case in SEVERITY_CASES[scenario] for arg in ("--case", case)]
                runs[scenario, severity] = (_replay_command(path, tmp_path_factory.mktemp("incidents"),
                                                            "--severity", severity, *chosen),
                                            len(SEVERITY_CASES[scenario]))
    def replay(key):
        command, count = runs[key]
        proc = subprocess.run(command, capture_output=True, text=True, env=_environment(count), timeout=600,
                              check=False)
        try:
            printed = json.loads(proc.stdout)
        except json.JSONDecodeError:
            printed = None
        return key, (proc.returncode, printed, proc.stderr)

    # A few at a time: more runs than processors only make each one slower.
    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
        return dict(pool.map(replay, sorted(runs, key=lambda key: -runs[key][1])))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_case_meets_its_expectation(replays, scenario):
    code, printed, err = replays[scenario, None]
    assert printed is not None, f"replay of {scenario} printed no JSON (exit {code}):\n{err[-3000:]}"
    unmet = printed["unmet_expectations"]
    errors = {case: result["errors"] for case, result in printed["cases"].items() if result.get("errors")}
    assert not unmet, (f"{scenario}: {len(unmet)} case(s) did not go as expected:\n"
                       + "\n".join(f"  {case}: {problem}" for case, problems in unmet.items() for problem in problems)
                       + ("\nerrors:\n" + json.dumps(errors, indent=1) if errors else ""))
    assert not errors
    assert code == 0


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_case_has_a_full_expectation(scenario):
    data = yaml.safe_load(_cases_file(scenario).read_text(encoding="utf-8"))
    assert data["scenario"] == scenario
    for name, case in data["cases"].items():
        assert {"planned", "status", "exit_code"} <= set(case.get("expect") or {}), name


@pytest.mark.parametrize(("scenario", "severity"),
                         [(scenario, severity) for scenario, runs in SEVERITY_RUNS.items() for severity in runs])
def test_severity_does_not_change_what_is_planned(replays, scenario, severity):
    _code, base, _err = replays[scenario, None]
    code, printed, err = replays[scenario, severity]
    assert printed is not None, f"replay of {scenario} at {severity} printed no JSON (exit {code}):\n{err[-3000:]}"
    for case in SEVERITY_CASES[scenario]:
        got, wanted = printed["cases"][case], base["cases"][case]
        assert got["planned"] == wanted["planned"], f"{case} at {severity}"
        assert (got["status"], got["exit_code"]) == (wanted["status"], wanted["exit_code"]), f"{case} at {severity}"
        assert not printed["unmet_expectations"].get(case), f"{case} at {severity}: {printed['unmet_expectations'][case]}"
    if scenario == "database-connection-failure":
        for case in ("auth-failed", "auth-failed-postgres-stopped", "auth-failed-api-failing"):
            assert printed["cases"][case]["planned"] == [], f"{case} at {severity}"
            assert (printed["cases"][case]["status"], printed["cases"][case]["exit_code"]) == ("unresolved", 3)


def test_operator_named_proposals_are_planned_for_approval(tmp_path):
    """The one branch a recording cannot trigger: the proposals the operator names with -e proposal_ids."""
    command = _replay_command(_cases_file("proposal-system-failure"), tmp_path, "--case", "healthy",
                              "-e", "proposal_ids=p-1,p-2")
    proc = subprocess.run(command, capture_output=True, text=True, env=_environment(5), timeout=300, check=False)
    result = json.loads(proc.stdout)["cases"]["healthy"]
    assert [task.split("|", 1)[1].strip() for task in result["planned"]] == [
        "Approve the critical proposals the operator named (-e proposal_ids=...)"]
    assert "p-1" in json.dumps(result["plans"])


# -- the loader ----------------------------------------------------------------------------------------------------

def _write(tmp_path: Path, text: str, name: str = "cases.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_cases_file_loads_with_expectations(tmp_path):
    path = _write(tmp_path, """
scenario: worker-queue-backup
severity: P1
cases:
  one:
    description: a case
    sources: {inngest: {reachable: true, queue_depth: 3}}
    after: {inngest: {reachable: true, queue_depth: 0}}
    expect: {planned: [], status: healthy, exit_code: 0}
  two:
    sources: {db: {reachable: false, failure: refused}}
""")
    loaded = load_recording(path)
    assert (loaded.scenario, loaded.severity, loaded.replay_of) == ("worker-queue-backup", "P1", None)
    assert loaded.cases["one"] == {"sources": {"inngest": {"reachable": True, "queue_depth": 3}},
                                   "after": {"inngest": {"reachable": True, "queue_depth": 0}}}
    assert loaded.cases["two"]["after"] == {}
    assert loaded.expectations == {"one": {"planned": [], "status": "healthy", "exit_code": 0}}


def test_incident_record_becomes_a_recording():
    record = {
        "id": "20261129T031500Z-worker-queue-backup-3fa2c1",
        "scenario": "worker-queue-backup",
        "severity": "P2",
        "findings": [
            {"host": "synap-lab", "phase": "Assess", "look_up": "inngest", "summary": "queue depth 150",
             "details": {"reachable": True, "failure": None, "queue_depth": 150, "stuck_count": 3}},
            {"host": "synap-lab", "phase": "Assess", "look_up": "db", "summary": "5/25 connections",
             "details": {"reachable": True, "long_queries": []}},
            {"host": "synap-lab", "phase": "Investigate", "summary": "a note, not a look-up"},
            {"host": "synap-lab", "phase": "Resolve", "look_up": "inngest", "summary": "queue depth 0",
             "details": {"reachable": True, "queue_depth": 0, "stuck_count": 0}},
            {"host": "web 2", "phase": "Assess", "look_up": "inngest", "summary": "unreachable",
             "details": {"reachable": False, "failure": "refused"}},
        ],
        "errors": [
            {"host": "synap-lab", "task": "Assess | Inngest queue and stuck runs", "msg": "jobs: docker not found"},
            {"host": "synap-lab", "task": "Mitigate | Restart the worker service", "msg": "restart: failed"},
        ],
    }
    loaded = from_incident(record, "incident.json")
    assert (loaded.scenario, loaded.severity, loaded.replay_of) == (
        "worker-queue-backup", "P2", "20261129T031500Z-worker-queue-backup-3fa2c1")
    lab = loaded.cases["synap-lab"]
    assert lab["sources"]["inngest"] == {"reachable": True, "failure": None, "queue_depth": 150, "stuck_count": 3,
                                         "msg": "queue depth 150"}
    assert lab["after"]["inngest"]["queue_depth"] == 0
    # A look-up that failed outright is replayed as unread; an error of a mitigation is no look-up.
    assert lab["sources"]["jobs"] == {"reachable": False, "failure": "error", "msg": "docker not found"}
    assert "restart" not in lab["sources"] and "restart" not in lab["after"]
    # A host name that cannot be a case name is made one.
    assert loaded.cases["web-2"]["sources"]["inngest"]["failure"] == "refused"
    assert loaded.expectations == {}


def test_incident_json_file_is_read_as_an_incident(tmp_path):
    record = {"id": "x-1", "scenario": "high-error-rate", "severity": "P1", "findings": [
        {"host": "h", "phase": "Assess", "look_up": "metrics", "summary": "5xx 20%", "details": {"error_rate": 0.2}}]}
    loaded = load_recording(_write(tmp_path, json.dumps(record), "incident.json"))
    assert loaded.replay_of == "x-1"
    assert loaded.cases["h"]["sources"]["metrics"] == {"error_rate": 0.2, "msg": "5xx 20%"}


@pytest.mark.parametrize(("text", "message"), [
    ("cases: [unclosed", "is not valid YAML or JSON at line"),
    ("- a list\n", "must hold a mapping"),
    ("cases: {one: {sources: {}}}\n", "give scenario"),
    ("scenario: high-error-rate\ncases: {}\n", "give cases"),
    ("scenario: high-error-rate\ncases: {'bad name!': {sources: {}}}\n", "case name 'bad name!'"),
    ("scenario: high-error-rate\ncases: {one: {expect: {}}}\n", "case one needs sources"),
    ("scenario: high-error-rate\ncases: {one: {sources: {}, expected: {}}}\n", "unknown key(s) expected"),
    ("scenario: high-error-rate\ncases: {one: {sources: {db: refused}}}\n", "sources.db must be a mapping"),
    ("scenario: high-error-rate\ncases: {one: {sources: {}, after: {db: [1]}}}\n", "after.db must be a mapping"),
    ('{"id": "x-2", "findings": []}', "recorded no look-up answers"),
])
def test_bad_recordings_say_why(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ReplayError) as raised:
        load_recording(path)
    assert message in str(raised.value)
    assert str(path) in str(raised.value)
    assert "\n" not in str(raised.value)


def test_missing_recording_says_why(tmp_path):
    with pytest.raises(ReplayError, match="cannot be read"):
        load_recording(tmp_path / "absent.yml")


def test_replay_inventory_gives_each_case_its_recording(tmp_path):
    recording = from_cases({"scenario": "high-error-rate", "cases": {
        "a": {"sources": {"metrics": {"error_rate": 0.3}}}, "b": {"sources": {}}}}, "test")
    base = HERE.parents[1] / "inventory" / "lab"
    inventory = replay_inventory(recording, base, tmp_path)
    hosts = json.loads((inventory / "hosts.json").read_text())["all"]["children"]["synap"]["hosts"]
    assert set(hosts) == {"a", "b"}
    assert hosts["a"][RunVar.REPLAY.value] == {"sources": {"metrics": {"error_rate": 0.3}}, "after": {}}
    assert hosts["a"]["ansible_connection"] == "local"
    assert (inventory / "group_vars").resolve() == (base / "group_vars").resolve()


def test_case_results_and_unmet_expectations():
    record = {
        "hosts": {"c": {"status": "diagnosed", "exit_code": 3}},
        "actions": [
            {"host": "c", "task": "Mitigate | Restart it", "status": "planned", "plan": ["restart x"]},
            {"host": "other", "task": "Mitigate | Other", "status": "planned", "plan": []},
            {"host": "c", "task": "Mitigate | Skipped one", "status": "skipped", "plan": []},
        ],
        "verifications": {"c": {"state": "unresolved", "checks": [
            {"name": "one", "state": "failed"}, {"name": "two", "state": "unknown"}, {"name": "three", "state": "ok"}]}},
        "errors": [{"host": "d", "msg": "boom"}],
    }
    results = case_results(record)
    assert results["c"] == {"planned": ["Mitigate | Restart it"], "plans": {"Mitigate | Restart it": ["restart x"]},
                            "status": "diagnosed", "exit_code": 3, "verification": "unresolved",
                            "failed_checks": ["one"], "unknown_checks": ["two"]}
    assert results["d"] == {"errors": ["boom"]}
    assert unmet_expectations({"planned": ["Restart it"], "status": "diagnosed", "failed_checks": ["one"]},
                              results["c"]) == []
    assert unmet_expectations({"planned": [], "exit_code": 0}, results["c"]) == [
        "planned: expected [], got ['Restart it']", "exit_code: expected 0, got 3"]


def test_recording_dataclass_defaults():
    assert Recording(scenario="s", severity=None, cases={}, source="x").expectations == {}


# -- the command line ----------------------------------------------------------------------------------------------

def _cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(SYNAP_PLAY), "replay", *args, "--incidents-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False)


def test_cli_unknown_case_is_a_one_line_usage_error(tmp_path):
    proc = _cli(str(_cases_file("worker-queue-backup")), "--case", "no-such-case", tmp_path=tmp_path)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "no case no-such-case" in lines[0] and "stuck-runs" in lines[0]
    assert proc.stdout == ""


def test_cli_bad_file_is_a_one_line_usage_error(tmp_path):
    bad = _write(tmp_path, "scenario: worker-queue-backup\ncases: {one: {sources: {db: 3}}}\n")
    proc = _cli(str(bad), tmp_path=tmp_path)
    assert proc.returncode == 2
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [
        line for line in proc.stderr.splitlines() if "sources.db must be a mapping" in line]


def test_cli_unknown_scenario(tmp_path):
    path = _write(tmp_path, "scenario: no-such-scenario\ncases: {one: {sources: {}}}\n")
    proc = _cli(str(path), tmp_path=tmp_path)
    assert proc.returncode == 2
    assert "unknown scenario 'no-such-scenario'" in proc.stderr
