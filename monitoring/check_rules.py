"""What promtool does not check in monitoring/: that the rules fit synap-play and that their tests cover them.

    .venv/bin/python monitoring/check_rules.py

- Every alert of every rules file is mapped in playbooks/alerts.yml (else `synap-play alert` and the EDA source
  refuse it), has a `severity` label that file maps to P0-P3, a `summary`, and a `description` naming its
  synap-play command: `synap-play alert <the alert>` and `synap-play <scenario>`, a scenario of
  playbooks/scenarios.yml, and the one the alert mapping runs for it.
- Every alert of every rules file is tested firing (a non-empty exp_alerts) and not firing (an empty one) by the
  promtool tests in monitoring/tests/ that load that file.
- Every metric of postgres-exporter-queries.yml that the rules use is defined there, and every selector of a metric
  counted in buckets (over_seconds, older_than_seconds) picks one bucket with `=`, one its query's VALUES list
  offers: the shipped rules' thresholds and the lab's overrides alike.

Exits 1 naming each problem. Needs PyYAML (run it with the checkout's .venv/bin/python).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RULE_FILES = [HERE / "rules" / "synap.rules.yml", HERE / "lab" / "synap.rules.yml"]
TESTS = HERE / "tests"
QUERIES = HERE / "postgres-exporter-queries.yml"
ALERT_MAP = ROOT / "playbooks" / "alerts.yml"
CATALOG = ROOT / "playbooks" / "scenarios.yml"

COMMAND = re.compile(r"`synap-play ([a-z0-9-]+)(?: ([A-Za-z0-9_]+))?`")
IDENTIFIER = re.compile(r"\b[a-zA-Z_][a-zA-Z0-9_]*\b")
# Labels of the exporter's queries whose values are the seconds of a VALUES list: the buckets a rule picks from.
BUCKET_LABELS = ("over_seconds", "older_than_seconds")
VALUES = re.compile(r"\bVALUES\s*((?:\(\s*\d+\s*\)\s*,?\s*)+)", re.IGNORECASE)
# A metric selector (in an expr, or in a query an annotation runs) and its label matchers.
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^{}]*)\}")
MATCHER = re.compile(r"""([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def load(path: Path):
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def alerts_of(path: Path) -> list[dict]:
    return [rule for group in load(path).get("groups") or [] for rule in group.get("rules") or [] if "alert" in rule]


def mapped_scenarios() -> tuple[dict[str, str], set[str], set[str], set[str]]:
    """Alert name -> scenario (alerts.yml first, then the catalog's alerts: lists), severity labels, scenarios, and
    the alerts alerts.yml names."""
    catalog = load(CATALOG).get("scenarios") or []
    scenarios = {entry["name"] for entry in catalog}
    mapping = {alert: entry["name"] for entry in catalog for alert in entry.get("alerts") or []}
    document = load(ALERT_MAP)
    in_alert_map = set()
    for alert, target in (document.get("alerts") or {}).items():
        mapping[alert] = target["scenario"] if isinstance(target, dict) else target
        in_alert_map.add(alert)
    severities = {str(label).lower() for label in document.get("severities") or {}}
    return mapping, severities, scenarios, in_alert_map


def check_alert(rule: dict, where: str, mapping: dict, severities: set, scenarios: set, in_alert_map: set,
                problems: list) -> None:
    name = rule["alert"]
    if name not in in_alert_map:
        problems.append(f"{where}: alert {name} is not in {rel(ALERT_MAP)}: `synap-play alert {name}` and the EDA "
                        f"source refuse it until it is mapped there")
    severity = (rule.get("labels") or {}).get("severity")
    if severity is None or str(severity).lower() not in severities:
        problems.append(f"{where}: alert {name}: severity label {severity!r} is not one {rel(ALERT_MAP)} maps "
                        f"({', '.join(sorted(severities))})")
    annotations = rule.get("annotations") or {}
    if not annotations.get("summary"):
        problems.append(f"{where}: alert {name}: no summary annotation")
    description = annotations.get("description") or ""
    commands = COMMAND.findall(description)
    alert_commands = [argument for command, argument in commands if command == "alert"]
    scenario_commands = [command for command, argument in commands if command != "alert"]
    if not scenario_commands:
        problems.append(f"{where}: alert {name}: its description names no `synap-play <scenario>` command")
    for scenario in scenario_commands:
        if scenario not in scenarios:
            problems.append(f"{where}: alert {name}: `synap-play {scenario}` is not a scenario of {rel(CATALOG)}")
    for argument in alert_commands:
        if argument != name:
            problems.append(f"{where}: alert {name}: its description says `synap-play alert {argument}`")
    if name in mapping and scenario_commands and mapping[name] not in scenario_commands:
        problems.append(f"{where}: alert {name}: {rel(ALERT_MAP)} runs {mapping[name]} for it, its description "
                        f"says {', '.join(scenario_commands)}")


def test_coverage(problems: list) -> dict[Path, set[str]]:
    """Which rules files the test files load, and which alerts they show firing and quiet."""
    covered: dict[Path, dict[str, set[str]]] = {}
    for test_file in sorted(TESTS.glob("*.test.yml")):
        document = load(test_file)
        firing: set[str] = set()
        quiet: set[str] = set()
        for test in document.get("tests") or []:
            for case in test.get("alert_rule_test") or []:
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
        for rule_file in document.get("rule_files") or []:
            path = (test_file.parent / rule_file).resolve()
            entry = covered.setdefault(path, {"firing": set(), "quiet": set()})
            entry["firing"] |= firing
            entry["quiet"] |= quiet
    counted = {}
    for path in RULE_FILES:
        entry = covered.get(path)
        if entry is None:
            problems.append(f"{rel(path)}: no test file in {rel(TESTS)} loads it")
            continue
        names = {rule["alert"] for rule in alerts_of(path)}
        for name in sorted(names - entry["firing"]):
            problems.append(f"{rel(path)}: alert {name} is never tested firing")
        for name in sorted(names - entry["quiet"]):
            problems.append(f"{rel(path)}: alert {name} is never tested not firing")
        counted[path] = names
    return counted


def exporter_buckets(queries: dict, problems: list) -> dict[str, dict[str, set[str]]]:
    """Metric -> {bucket label -> the values its query's VALUES list offers}, for the queries with a bucket label."""
    buckets: dict[str, dict[str, set[str]]] = {}
    for key, spec in queries.items():
        columns = [(column, str(mapping.get("usage", "")).upper())
                   for metric in spec.get("metrics") or [] for column, mapping in metric.items()]
        labels = [column for column, usage in columns if usage == "LABEL" and column in BUCKET_LABELS]
        if not labels:
            continue
        lists = VALUES.findall(spec.get("query", ""))
        if len(lists) != 1:
            problems.append(f"{rel(QUERIES)}: {key}: its bucket label {labels[0]} needs one VALUES list of seconds in "
                            f"its query, which has {len(lists)}")
            continue
        offered = set(re.findall(r"\d+", lists[0]))
        for column, usage in columns:
            if usage in ("GAUGE", "COUNTER"):
                buckets[f"{key}_{column}"] = {label: offered for label in labels}
    return buckets


def rule_texts(rule: dict) -> list[str]:
    """The texts of a rule that hold PromQL: its expr and its annotations (whose templates may run queries)."""
    return [str(rule.get("expr", ""))] + [str(value) for value in (rule.get("annotations") or {}).values()]


def check_buckets(path: Path, buckets: dict, problems: list) -> None:
    """Every selector of a bucketed metric picks, with `=`, a bucket its query offers."""
    for group in load(path).get("groups") or []:
        for rule in group.get("rules") or []:
            name = rule.get("alert") or rule.get("record")
            for text in rule_texts(rule):
                for metric, matchers in SELECTOR.findall(text):
                    if metric not in buckets:
                        continue
                    found = {label: (op, value[1:-1]) for label, op, value in MATCHER.findall(matchers)}
                    for label, offered in buckets[metric].items():
                        shown = ", ".join(sorted(offered, key=int))
                        if label not in found:
                            problems.append(f"{rel(path)}: {name}: {metric} without {label}=\"...\" adds up every "
                                            f"bucket ({shown}): pick one")
                            continue
                        op, value = found[label]
                        if "%" in value or "{{" in value:
                            continue  # filled in by the annotation's template
                        if op != "=":
                            problems.append(f"{rel(path)}: {name}: {metric}{{{label}{op}\"{value}\"}}: pick one bucket, "
                                            f"with {label}=\"...\"")
                        elif value not in offered:
                            problems.append(f"{rel(path)}: {name}: {metric}{{{label}=\"{value}\"}}: the exporter's "
                                            f"query offers {label} = one of {shown} ({rel(QUERIES)})")


def check_exporter_metrics(problems: list) -> None:
    queries = load(QUERIES)
    defined = {}
    for key, spec in queries.items():
        for metric in spec.get("metrics") or []:
            for column, mapping in metric.items():
                if str(mapping.get("usage", "")).upper() in ("GAUGE", "COUNTER"):
                    defined[f"{key}_{column}"] = spec.get("query", "")
    buckets = exporter_buckets(queries, problems)
    for path in RULE_FILES:
        text = path.read_text(encoding="utf-8")
        for identifier in sorted(set(IDENTIFIER.findall(text))):
            for key in queries:
                if identifier.startswith(key + "_") and identifier not in defined:
                    problems.append(f"{rel(path)}: {identifier} is not a metric {rel(QUERIES)} defines "
                                    f"({', '.join(sorted(defined))})")
        check_buckets(path, buckets, problems)


def main() -> int:
    problems: list[str] = []
    try:
        mapping, severities, scenarios, in_alert_map = mapped_scenarios()
        total = 0
        for path in RULE_FILES:
            for rule in alerts_of(path):
                total += 1
                check_alert(rule, rel(path), mapping, severities, scenarios, in_alert_map, problems)
        test_coverage(problems)
        check_exporter_metrics(problems)
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as error:
        print(f"check_rules: cannot read monitoring/ or playbooks/: {error!r}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"check_rules: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"check_rules: {total} alerts in {len(RULE_FILES)} rules files: each mapped in {rel(ALERT_MAP)}, severity "
          "labels mapped, synap-play commands named, each alert tested firing and not firing; the exporter queries "
          "define what the rules use, and offer the buckets they pick")
    return 0


if __name__ == "__main__":
    sys.exit(main())
