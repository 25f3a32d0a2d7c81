# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Triage: which runbook scenario a set of findings matches, and how severe it is, by the rules the ops team edits
(playbooks/triage-rules.yml).

A rule's ``when`` is a Jinja expression, as a task's ``when`` is, over the triage's look-ups by name (``db``,
``metrics``...) and the inventory's settings (``synap_threshold_error_rate``...). Each condition comes out
*matched*, *clear* or *unknown*: unknown when it cannot be evaluated (a figure not read is null, and null compares
to nothing) or when it is not matched and reads a source that was not read. A matched condition is positive
evidence, so it counts whatever else was not read; an unknown one never clears anything. The verdict is healthy
only when every condition is clear.

Used by the synap.ops.triage action (the playbook's verdict) and by synap-play's first look (the same verdict from
the first look's answers, before the playbook is up).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jinja2
import yaml
from ansible_collections.synap.ops.plugins.plugin_utils import marshalled
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import SEVERITIES
from ansible_collections.synap.ops.plugins.plugin_utils.yaml_files import safe_load
from jinja2 import StrictUndefined, meta
from jinja2.environment import TemplateExpression
from jinja2.sandbox import SandboxedEnvironment

RULE_KEYS = {"when", "evidence", "weight", "supporting"}
CONDITION_KEYS = {"name", "when", "scenarios"}
LEVEL_KEYS = {"level", "meaning", "conditions"}
NAME = re.compile(r"^[a-z][a-z0-9-]*$")

# What is kept of the compiled rules depends on this file's Jinja settings too: a change to them changes this.
_KEPT_FORMAT = "1"


class _CodeNotingSandbox(SandboxedEnvironment):
    """Jinja's sandbox, noting in each thread the code it compiled last (for the compiled rules load_rules keeps)."""

    last = threading.local()

    def compile(self, source, name=None, filename=None, raw=False, defer_init=False):
        code = super().compile(source, name, filename, raw, defer_init)
        _CodeNotingSandbox.last.code = code
        return code


_jinja = _CodeNotingSandbox(undefined=StrictUndefined, autoescape=False)


class _Compiled:
    """The rules' conditions and evidence templates compiled, by kind and source, as (the names each reads, its
    code): compiled here, or taken from what an earlier process kept (load_rules' keep_in)."""

    def __init__(self, kept=None):
        self.entries = dict(kept or {})

    def get(self, kind, source):
        """(the names SOURCE reads, a callable): a condition's TemplateExpression or an evidence's Template.
        Raises Jinja's error for a source that does not compile."""
        found = self.entries.get((kind, source))
        if found is not None:
            try:
                reads, code = found
                if not isinstance(reads, frozenset):
                    raise TypeError("not the names a source reads")
                template = _jinja.template_class.from_code(_jinja, code, _jinja.make_globals(None), None)
                return reads, TemplateExpression(template, undefined_to_none=False) if kind == "condition" else template
            except Exception:  # kept by something else than this code: compiled afresh, and kept again
                del self.entries[(kind, source)]
        condition = kind == "condition"
        parsed = _jinja.parse("{{ (" + source + ") }}" if condition else source)
        made = (_jinja.compile_expression(source, undefined_to_none=False) if condition
                else _jinja.from_string(source))
        reads = frozenset(meta.find_undeclared_variables(parsed))
        self.entries[(kind, source)] = (reads, _CodeNotingSandbox.last.code)
        return reads, made


class RulesError(Exception):
    """The rules file cannot be used; each message names where."""

    def __init__(self, problems):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Condition:
    where: str  # "matches.high-error-rate[0]", for messages
    when: str
    reads: frozenset  # the names the expression reads
    # Compiled once, when the rules are loaded: a verdict judges every condition, and the first look's verdict
    # comes the moment its answers are in.
    evaluate: Callable[..., Any] = field(compare=False, repr=False, default=None)

    def judge(self, names, unread):
        """("matched" | "clear" | "unknown", why)."""
        try:
            value = self.evaluate(**names)
            outcome = bool(value)
        except Exception as exc:  # a figure not read (None), a field the answer lacks: no evidence either way
            return "unknown", f"{self.where}: cannot be judged: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        if outcome:
            return "matched", ""
        not_read = sorted(self.reads & unread)
        if not_read:
            return "unknown", f"{self.where}: {', '.join(not_read)} not read"
        return "clear", ""


@dataclass(frozen=True)
class MatchRule:
    scenario: str
    condition: Condition
    evidence: str
    weight: int
    supporting: bool  # counts only beside a rule of its scenario that is not supporting
    evidence_reads: frozenset = frozenset()
    evidence_template: Any = field(compare=False, repr=False, default=None)  # compiled once, as conditions are


@dataclass(frozen=True)
class SeverityCondition:
    level: str
    name: str
    condition: Condition
    scenarios: tuple = ()  # empty: every matched scenario


@dataclass
class Rules:
    matches: list = field(default_factory=list)
    severity: list = field(default_factory=list)
    meanings: dict = field(default_factory=dict)

    @property
    def names(self):
        """Every name the conditions and the evidence read: look-ups and settings."""
        return frozenset().union(*(r.condition.reads for r in [*self.matches, *self.severity]),
                                 *(r.evidence_reads for r in self.matches))


def _condition(where, expression, problems, compiled):
    if not isinstance(expression, str) or not expression.strip():
        problems.append(f"{where}: when must be a Jinja expression (as in a task's when)")
        return None
    try:
        reads, evaluate = compiled.get("condition", expression)
    except Exception as exc:
        problems.append(f"{where}: when is not a valid expression: {str(exc).splitlines()[0]}")
        return None
    return Condition(where, expression, reads, evaluate)


def parse_rules(document, scenarios=None, compiled=None):
    """The rules in ``document`` (the YAML file's content), checked; ``scenarios``, when given, the catalog's names
    every matched scenario must be one of. Raises RulesError listing every problem."""
    compiled = compiled if compiled is not None else _Compiled()
    problems = []
    if not isinstance(document, dict) or set(document) - {"matches", "severity"}:
        raise RulesError(["the rules file must be a mapping with matches and severity"])
    rules = Rules()
    matches = document.get("matches")
    if not isinstance(matches, dict) or not matches:
        problems.append("matches: a mapping of scenario names to their rules")
        matches = {}
    for scenario, entries in matches.items():
        if scenarios is not None and scenario not in scenarios:
            problems.append(f"matches.{scenario}: not a scenario of the catalog ({', '.join(sorted(scenarios))})")
        if not isinstance(entries, list) or not entries:
            problems.append(f"matches.{scenario}: a list of rules")
            continue
        for index, entry in enumerate(entries):
            where = f"matches.{scenario}[{index}]"
            if not isinstance(entry, dict) or set(entry) - RULE_KEYS or "when" not in entry or "evidence" not in entry:
                problems.append(f"{where}: needs when and evidence (and may have weight, supporting)")
                continue
            condition = _condition(where, entry["when"], problems, compiled)
            evidence_reads, evidence_template = frozenset(), None
            try:
                evidence_reads, evidence_template = compiled.get("evidence", str(entry["evidence"]))
            except Exception as exc:
                problems.append(f"{where}: evidence is not a valid template: {str(exc).splitlines()[0]}")
            weight = entry.get("weight", 1)
            if not isinstance(weight, int) or isinstance(weight, bool) or weight < 1:
                problems.append(f"{where}: weight must be a whole number of at least 1")
            if condition:
                rules.matches.append(MatchRule(scenario, condition, str(entry["evidence"]),
                                               weight if isinstance(weight, int) else 1,
                                               bool(entry.get("supporting", False)), evidence_reads,
                                               evidence_template))
    levels = document.get("severity")
    named_levels = [level.get("level") if isinstance(level, dict) else None for level in levels or []]
    if not isinstance(levels, list) or named_levels != list(SEVERITIES):
        problems.append(f"severity: a list of the levels {', '.join(SEVERITIES)}, in that order, each with level, "
                        "meaning and conditions")
        levels = [level for level in levels or [] if isinstance(level, dict)]
    for level in levels:
        name = level.get("level")
        if set(level) - LEVEL_KEYS:
            problems.append(f"severity.{name}: unknown key(s) {', '.join(sorted(set(level) - LEVEL_KEYS))}")
        rules.meanings[name] = str(level.get("meaning") or "")
        for index, entry in enumerate(level.get("conditions") or []):
            where = f"severity.{name}[{index}]"
            if not isinstance(entry, dict) or set(entry) - CONDITION_KEYS or not entry.get("name") or "when" not in entry:
                problems.append(f"{where}: needs name and when (and may have scenarios)")
                continue
            named = tuple(entry.get("scenarios") or ())
            for scenario in named:
                if scenario not in matches:
                    problems.append(f"{where}: scenario {scenario} has no match rules")
            condition = _condition(where, entry["when"], problems, compiled)
            if condition:
                rules.severity.append(SeverityCondition(name, str(entry["name"]), condition, named))
    if problems:
        raise RulesError(problems)
    return rules


def load_rules(path, scenarios=None, keep_in=None):
    """The rules of the file at PATH. With KEEP_IN (a folder of the user's own: what it holds is run), the Jinja
    code they compile to is kept there for the next process, by the file's content, Jinja's version and Python's:
    compiling them is most of their loading, which synap-play triage does while its look-ups run."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
        document = safe_load(raw)
    except OSError as exc:
        raise RulesError([f"{path}: cannot be read: {exc.strerror}"]) from exc
    except yaml.YAMLError as exc:
        raise RulesError([f"{path}: not valid YAML: {str(exc).splitlines()[0]}"]) from exc
    if keep_in is None:
        return parse_rules(document, scenarios)
    identity = hashlib.sha256(raw)
    for part in (_KEPT_FORMAT, jinja2.__version__, sys.implementation.cache_tag or "", sys.version):
        identity.update(b"\0" + part.encode())
    kept_file = os.path.join(str(keep_in), identity.hexdigest()[:32] + ".marshal")
    kept = marshalled.load(kept_file)
    compiled = _Compiled(kept if isinstance(kept, dict) else None)
    rules = parse_rules(document, scenarios, compiled)
    if compiled.entries != kept:
        marshalled.dump(kept_file, compiled.entries)
    return rules


def unread_sources(sources):
    """The look-ups whose answer is not (wholly) read: failed, or not reachable."""
    return frozenset(name for name, answer in sources.items()
                     if not isinstance(answer, dict) or answer.get("failed") or answer.get("reachable") is False)


def _render(rule, names):
    try:
        return " ".join(rule.evidence_template.render(**names).split())
    except Exception as exc:  # the evidence's own figures may be missing: say the rule matched anyway
        return f"{rule.evidence.strip()} ({str(exc).splitlines()[0]})"


def triage(rules, sources, settings, order=()):
    """The verdict: the matched scenarios ranked (weight, then severity, then ``order``: the catalog's), each with
    its evidence and severity; what could not be judged; healthy only when nothing matched and nothing is unknown.
    ``sources``: look-up name -> answer; ``settings``: the inventory's variables the rules read."""
    names = {**settings, **sources}
    unread = unread_sources(sources)
    found = {}
    unknown = []
    for rule in rules.matches:
        state, why = rule.condition.judge(names, unread)
        if state == "unknown":
            unknown.append({"scenario": rule.scenario, "why": why})
        elif state == "matched":
            found.setdefault(rule.scenario, []).append(rule)
    matched = []
    for scenario, hits in found.items():
        if all(hit.supporting for hit in hits):
            continue  # a recent deploy, say, is no incident by itself
        levels = {}
        for condition in rules.severity:
            if condition.scenarios and scenario not in condition.scenarios:
                continue
            state, why = condition.condition.judge(names, unread)
            if state == "matched":
                levels.setdefault(condition.level, []).append(condition.name)
        severity = next((level for level in SEVERITIES if level in levels), "P3")
        matched.append({
            "scenario": scenario,
            "weight": sum(hit.weight for hit in hits),
            "severity": severity,
            "severity_meaning": rules.meanings.get(severity, ""),
            "severity_because": levels.get(severity, []),
            "evidence": [_render(hit, names) for hit in hits],
        })
    position = {name: index for index, name in enumerate(order)}
    matched.sort(key=lambda m: (-m["weight"], SEVERITIES.index(m["severity"]), position.get(m["scenario"], len(position))))
    return {"matched": matched, "unknown": unknown, "unread": sorted(unread),
            "healthy": not matched and not unknown, "settings": dict(settings)}


def with_commands(verdict, inventory=None):
    """The verdict with the command to run next for each match: the scenario, on this inventory, at its severity."""
    verdict["commands"] = [" ".join(["synap-play", match["scenario"], *(["-i", str(inventory)] if inventory else []),
                                     "--severity", match["severity"]]) for match in verdict["matched"]]
    return verdict


def summary_of(verdict):
    if verdict["matched"]:
        return "; ".join(f"{m['scenario']} ({m['severity']}): {'; '.join(m['evidence'])}" for m in verdict["matched"])
    if verdict["unknown"]:
        return f"nothing matched, but {len(verdict['unknown'])} rule(s) could not be judged: " + "; ".join(
            entry["why"] for entry in verdict["unknown"][:5])
    return "healthy: no scenario's findings"
