# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which runbook scenario the triage's findings match, and how severe: the rules of playbooks/triage-rules.yml
(plugins/plugin_utils/triage.py) applied to the look-ups of the triage's Assess task. Runs on the controller only.

It returns the verdict and, per scenario of the catalog, a check for the Resolve step ("nothing points to
<scenario>"): failed when the findings match it, unknown when a rule for it could not be judged. So a triage ends
as any run does: healthy (exit 0), a problem a human is needed for (3), or could not verify (6).
"""

from __future__ import annotations

import json
import os
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.synap.ops.plugins.plugin_utils.action_args import refuse_unknown
from ansible_collections.synap.ops.plugins.plugin_utils.catalog import CatalogError, load_catalog
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import PLAN_DIR_ENV, TRIAGE_SETTINGS_FILE
from ansible_collections.synap.ops.plugins.plugin_utils.triage import RulesError, load_rules, summary_of, triage, with_commands

OPTIONS = {"sources", "rules", "catalog", "inventory"}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        refuse_unknown(args, OPTIONS)
        sources = args.get("sources")
        if not isinstance(sources, dict) or not sources:
            raise AnsibleActionFail("sources must be the triage's look-ups by name (the diagnose task's sources)")
        try:
            scenarios = list(load_catalog(args.get("catalog")))  # the catalog's order breaks ties
            rules = load_rules(args.get("rules"), scenarios)
        except CatalogError as exc:
            raise AnsibleActionFail(str(exc)) from exc
        except RulesError as exc:
            raise AnsibleActionFail(f"triage rules {args.get('rules')}: {exc}") from exc
        templar = self._templar.copy_with_new_env(available_variables=task_vars)
        settings = {name: templar.template(task_vars[name]) for name in rules.names - set(sources) if name in task_vars}
        verdict = triage(rules, sources, settings, order=scenarios)
        keep_settings(settings)
        with_commands(verdict, args.get("inventory"))
        result.update(changed=False, verdict=verdict, checks=checks_of(verdict, scenarios), msg=summary_of(verdict))
        return result


def keep_settings(settings):
    """Beside the triage's kept look-ups (synap-play asks for them), the settings its rules read: with both, the
    next triage's first look gives the verdict before the playbook is up."""
    folder = os.environ.get(PLAN_DIR_ENV)
    if not folder:
        return
    os.makedirs(folder, mode=0o700, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".settings-", suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(settings, out, sort_keys=True, default=str)
    os.replace(temporary, os.path.join(folder, TRIAGE_SETTINGS_FILE))


def checks_of(verdict, scenarios):
    matched = {match["scenario"]: match for match in verdict["matched"]}
    unknown = {}
    for entry in verdict["unknown"]:
        unknown.setdefault(entry["scenario"], []).append(entry["why"])
    checks = []
    for scenario in scenarios or sorted({*matched, *unknown}):
        match = matched.get(scenario)
        checks.append({
            "name": f"nothing points to {scenario}",
            "known": match is not None or scenario not in unknown,
            "ok": match is None and scenario not in unknown,
            "observed": f"matches at {match['severity']}: {'; '.join(match['evidence'])}" if match else "no match",
            "unknown_because": "; ".join(unknown.get(scenario, [])),
        })
    return checks
