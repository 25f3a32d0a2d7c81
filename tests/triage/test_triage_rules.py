"""The triage rules (plugins/plugin_utils/triage.py, playbooks/triage-rules.yml) without the lab: what counts as a
match, what stays unknown, how scenarios are ranked and given a severity; and the shipped rules replayed against
the look-ups recorded from each of the lab's ten faults and from the healthy lab (tests/triage/recorded/)."""

from __future__ import annotations

import json
import marshal
from pathlib import Path

import pytest
import yaml

from synap_play import collection

collection.load()
from ansible_collections.synap.ops.plugins.plugin_utils.catalog import load_catalog  # noqa: E402
from ansible_collections.synap.ops.plugins.plugin_utils.triage import (  # noqa: E402
    RulesError,
    load_rules,
    parse_rules,
    triage,
)

ROOT = Path(__file__).resolve().parents[2]
RECORDED = Path(__file__).parent / "recorded"
SCENARIOS = list(load_catalog(ROOT / "playbooks" / "scenarios.yml"))
LEVELS = [{"level": level, "meaning": level, "conditions": []} for level in ("P0", "P1", "P2", "P3")]


def rules_of(matches, severity=None):
    return parse_rules({"matches": matches, "severity": severity or LEVELS}, SCENARIOS)


READ = {"reachable": True, "failure": None}


def test_a_figure_not_read_is_unknown_never_clear():
    rules = rules_of({"worker-queue-backup": [{"when": "inngest.queue_depth > 100", "evidence": "deep"}]})
    assert triage(rules, {"inngest": {**READ, "queue_depth": 5}}, {})["healthy"] is True
    unread = triage(rules, {"inngest": {"reachable": False, "failure": "refused", "queue_depth": None}}, {})
    assert unread["healthy"] is False and unread["matched"] == []
    assert unread["unknown"][0]["scenario"] == "worker-queue-backup" and "cannot be judged" in unread["unknown"][0]["why"]
    assert unread["unread"] == ["inngest"]


def test_a_condition_that_does_not_hold_on_a_source_not_read_is_unknown_and_one_that_holds_is_evidence():
    rules = rules_of({"database-connection-failure": [
        {"when": "db.failure in ['refused', 'timeout']", "evidence": "down: {{ db.msg }}", "weight": 8}]})
    refused = {"reachable": False, "failure": "refused", "msg": "connection refused"}
    verdict = triage(rules, {"db": refused}, {})
    assert verdict["matched"][0]["evidence"] == ["down: connection refused"]
    auth = triage(rules, {"db": {"reachable": False, "failure": "auth_failed", "msg": "password"}}, {})
    assert auth["matched"] == [] and auth["unknown"][0]["why"] == "matches.database-connection-failure[0]: db not read"


def test_supporting_evidence_alone_is_no_match_and_scenarios_rank_by_weight_then_severity_then_catalog():
    rules = rules_of({
        "high-error-rate": [{"when": "metrics.error_rate > 0.05", "evidence": "errors", "weight": 4},
                            {"when": "deploys.head_recent", "evidence": "deploy", "weight": 1, "supporting": True}],
        "elevated-latency": [{"when": "metrics.p95 > 0.5", "evidence": "slow", "weight": 4}],
        "worker-queue-backup": [{"when": "deploys.head_recent", "evidence": "deploy", "supporting": True}],
    }, [{"level": "P0", "meaning": "outage", "conditions": []},
        {"level": "P1", "meaning": "partial", "conditions": [{"name": "errors", "when": "metrics.error_rate > 0.05"}]},
        {"level": "P2", "meaning": "minor", "conditions": [
            {"name": "slow", "when": "metrics.p95 > 0.5", "scenarios": ["elevated-latency"]}]},
        {"level": "P3", "meaning": "cosmetic", "conditions": []}])
    sources = {"metrics": {**READ, "error_rate": 0.2, "p95": 0.9}, "deploys": {**READ, "head_recent": True}}
    verdict = triage(rules, sources, {}, order=SCENARIOS)
    assert [(m["scenario"], m["weight"], m["severity"]) for m in verdict["matched"]] == [
        ("high-error-rate", 5, "P1"), ("elevated-latency", 4, "P1")]
    assert verdict["matched"][0]["severity_because"] == ["errors"]


@pytest.mark.parametrize("document,problem", [
    ({"matches": {}, "severity": LEVELS}, "matches: a mapping"),
    ({"matches": {"no-such": [{"when": "x", "evidence": "y"}]}, "severity": LEVELS}, "not a scenario of the catalog"),
    ({"matches": {"high-error-rate": [{"when": "metrics.error_rate >", "evidence": "y"}]}, "severity": LEVELS},
     "not a valid expression"),
    ({"matches": {"high-error-rate": [{"when": "x", "evidence": "y", "weight": 0}]}, "severity": LEVELS},
     "weight must be"),
    ({"matches": {"high-error-rate": [{"when": "x", "evidence": "y"}]}, "severity": LEVELS[:3]}, "P0, P1, P2, P3"),
    ({"matches": {"high-error-rate": [{"when": "x"}]}, "severity": LEVELS}, "needs when and evidence"),
])
def test_a_broken_rules_file_is_refused_naming_each_problem(document, problem):
    with pytest.raises(RulesError) as refused:
        parse_rules(document, SCENARIOS)
    assert any(problem in message for message in refused.value.problems), refused.value.problems


def test_the_shipped_rules_load_and_read_only_look_ups_and_declared_variables():
    from synap_play.validate.triage import triage_look_ups

    rules = load_rules(ROOT / "playbooks" / "triage-rules.yml", SCENARIOS)
    spec = yaml.safe_load((ROOT / "roles" / "synap" / "meta" / "argument_specs.yml").read_text())
    declared = set(spec["argument_specs"]["main"]["options"])
    assert rules.names <= triage_look_ups(ROOT / "roles") | declared
    assert {rule.scenario for rule in rules.matches} == set(SCENARIOS)


def recordings():
    return sorted(RECORDED.glob("*.json")) if RECORDED.is_dir() else []


@pytest.mark.parametrize("recording", recordings(), ids=lambda path: path.stem)
def test_the_shipped_rules_replayed_on_the_look_ups_recorded_from_the_lab(recording):
    """Each file: the triage's look-ups as recorded with one fault injected (or none), the settings of
    inventory/lab, and what triage must say: the scenario ranked first and its severity, or healthy."""
    recorded = json.loads(recording.read_text())
    rules = load_rules(ROOT / "playbooks" / "triage-rules.yml", SCENARIOS)
    verdict = triage(rules, recorded["sources"], recorded["settings"], order=SCENARIOS)
    expected = recorded["expect"]
    if expected["scenario"] is None:
        assert verdict["healthy"], verdict
    else:
        assert verdict["matched"], verdict
        first = verdict["matched"][0]
        assert (first["scenario"], first["severity"]) == (expected["scenario"], expected["severity"]), verdict


def test_every_lab_fault_and_the_healthy_lab_have_a_recording():
    from synap_play.lab.faults import FAULTS

    assert {path.stem for path in recordings()} == {*FAULTS, "healthy"}


def test_the_first_look_verdict_compiles_the_rules_only_once_the_look_ups_are_under_way():
    # Compiled beside the run's start-up, the rules delayed the look-ups' start as much as they took.
    from synap_play.triage_cli import FirstLookVerdict

    scenarios = list(load_catalog(ROOT / "playbooks" / "scenarios.yml"))
    verdict = FirstLookVerdict(ROOT / "playbooks", "lab", scenarios)
    assert verdict.loading.ident is None and verdict.rules is None
    verdict.begin()
    verdict.begin()  # told twice (the look can finish before it is told it began): loaded once
    verdict.loading.join(timeout=60)
    assert verdict.rules is not None and verdict.rules.matches


def test_rules_loaded_from_the_kept_code_judge_as_freshly_compiled_ones(tmp_path, monkeypatch):
    from ansible_collections.synap.ops.plugins.plugin_utils import triage as engine

    rules_file = ROOT / "playbooks" / "triage-rules.yml"
    fresh = load_rules(rules_file, SCENARIOS)
    load_rules(rules_file, SCENARIOS, keep_in=tmp_path)  # compiled, and kept
    assert len(list(tmp_path.glob("*.marshal"))) == 1

    def no_compiling(*_args, **_kwargs):
        raise AssertionError("compiled again")

    monkeypatch.setattr(engine._jinja, "compile", no_compiling)
    kept = load_rules(rules_file, SCENARIOS, keep_in=tmp_path)
    assert [m.condition.reads for m in kept.matches] == [m.condition.reads for m in fresh.matches]
    assert [s.condition.reads for s in kept.severity] == [s.condition.reads for s in fresh.severity]
    for recording in recordings():
        recorded = json.loads(recording.read_text())
        assert (triage(kept, recorded["sources"], recorded["settings"], order=SCENARIOS)
                == triage(fresh, recorded["sources"], recorded["settings"], order=SCENARIOS)), recording.name
    monkeypatch.undo()
    # A kept file that holds something else than this code keeps is compiled afresh (and kept again).
    [kept_file] = tmp_path.glob("*.marshal")
    kept_file.write_bytes(marshal.dumps({key: ("not", "this") for key in marshal.loads(kept_file.read_bytes())}))
    damaged = load_rules(rules_file, SCENARIOS, keep_in=tmp_path)
    assert [m.condition.reads for m in damaged.matches] == [m.condition.reads for m in fresh.matches]
    assert all(isinstance(reads, frozenset) for reads, _code in marshal.loads(kept_file.read_bytes()).values())
    # Another file (or another Jinja, another Python) is compiled and kept beside it, never read from the old one.
    edited = tmp_path / "edited" / "triage-rules.yml"
    edited.parent.mkdir()
    edited.write_text(rules_file.read_text().replace("weight: 8", "weight: 9", 1))
    load_rules(edited, SCENARIOS, keep_in=tmp_path)
    assert len(list(tmp_path.glob("*.marshal"))) == 2
