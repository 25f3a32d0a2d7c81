"""synap.ops.linear, the project's play strategy: what a worker would only template runs on the controller, and
every task ends as under Ansible's own linear strategy.

A task whose action needs no connection (set_fact, assert, validate_argument_spec, the record) runs in
ansible-playbook's own process, and a task whose condition is false is skipped there, without a worker forked per
host (at 50 hosts these workers were a third of a run). The play runs in a real ansible-playbook on local hosts,
once under each strategy; the process a template was rendered in is told by a pipe look-up's parent process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.template import Templar, trust_as_template
from ansible_collections.synap.ops.plugins.plugin_utils import templating_caches

from synap_play.project import collections_path

ROOT = Path(__file__).resolve().parents[2]
HOSTS = ("one", "two", "three")

# Each host's n is its position. The tasks cover what the strategy decides on (a connection-free action, a false
# condition, a loop, run_once, no_log, a failure rescued, a condition that cannot be evaluated) and what a task's
# result feeds (a registered skip, a role's argument check).
PLAY = [{
    "name": "strategy under test",
    "hosts": "all",
    "gather_facts": False,
    "roles": [{"role": "checked"}, {"role": "levelled"}],
    "tasks": [
        {"name": "set here", "ansible.builtin.set_fact": {
            "set_in": "{{ lookup('ansible.builtin.pipe', 'echo $PPID') }}", "doubled": "{{ n * 2 }}"}},
        {"name": "never applies", "ansible.builtin.command": "true",
         "when": "lookup('ansible.builtin.pipe', 'echo $PPID >> ' ~ pid_file) == 'never'"},
        {"name": "only the even host", "ansible.builtin.command": "echo {{ n }}", "register": "maybe",
         "changed_when": False, "when": "n is even"},
        {"name": "a skip is registered as one", "ansible.builtin.assert": {
            "that": ["(maybe is skipped) == (n is odd)", "n is odd or maybe.stdout == '2'"]}},
        {"name": "a failure rescued", "block": [
            {"name": "fails on three", "ansible.builtin.assert": {"that": "n != 3", "quiet": True}}],
         "rescue": [{"name": "rescued", "ansible.builtin.set_fact": {"rescued": True}}]},
        {"name": "kept quiet", "ansible.builtin.set_fact": {"quiet_value": "{{ n }}"}, "no_log": True},
        {"name": "per item", "ansible.builtin.set_fact": {"items_seen": "{{ (items_seen | default([])) + [item] }}"},
         "loop": [1, 2, 3], "when": "item <= n"},
        {"name": "once for the play", "ansible.builtin.set_fact": {"first": "{{ inventory_hostname }}"},
         "run_once": True},
        {"name": "a condition that cannot be evaluated", "ansible.builtin.debug": {"msg": "never"},
         "when": "no_such_variable.field", "ignore_errors": True, "register": "broken"},
        {"name": "keep", "ansible.builtin.copy": {
            "dest": "{{ out_dir }}/{{ inventory_hostname }}.json",
            "content": "{{ {'doubled': doubled, 'maybe_skipped': maybe is skipped, 'rescued': rescued | default(false),"
                       " 'quiet': quiet_value, 'items': items_seen, 'first': first,"
                       " 'broken': broken.failed, 'broken_msg': broken.msg is search('no_such_variable'),"
                       " 'set_in': set_in} | to_json }}"}},
    ],
}]


def run_play(tmp_path: Path, strategy: str) -> tuple[subprocess.CompletedProcess, dict, list[str], int]:
    """Run PLAY with STRATEGY: the finished process, each host's kept values, the processes that judged the false
    condition, and ansible-playbook's own process id."""
    work = tmp_path / strategy
    # n differs from host to host; every host's level templates to 1, so its check's result is the first host's.
    for role, option in (("checked", "n"), ("levelled", "level")):
        (work / "roles" / role / "meta").mkdir(parents=True)
        (work / "roles" / role / "meta" / "argument_specs.yml").write_text(yaml.safe_dump({"argument_specs": {
            "main": {"short_description": option, "options": {option: {"type": "int", "required": True}}}}}))
    (work / "play.yml").write_text(yaml.safe_dump(PLAY, sort_keys=False), encoding="utf-8")
    (work / "inventory.yml").write_text(yaml.safe_dump({"all": {"vars": {"level": "{{ n // 10 + 1 }}"}, "hosts": {
        host: {"n": position, "ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        for position, host in enumerate(HOSTS, start=1)}}}), encoding="utf-8")
    pid_file = work / "judged-in"
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STRATEGY=strategy,
               ANSIBLE_COLLECTIONS_PATH=str(collections_path(ROOT)), ANSIBLE_ROLES_PATH=str(work / "roles"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    process = subprocess.Popen(
        [sys.executable, str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(work / "inventory.yml"),
         "-e", json.dumps({"out_dir": str(work), "pid_file": str(pid_file)}), str(work / "play.yml")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    stdout, stderr = process.communicate(timeout=180)
    done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    kept = {host: json.loads((work / f"{host}.json").read_text(encoding="utf-8"))
            for host in HOSTS if (work / f"{host}.json").is_file()}
    judged = pid_file.read_text(encoding="utf-8").split() if pid_file.is_file() else []
    return done, kept, judged, process.pid


def recap(stdout: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+)\s+:\s+(ok=.*?)\s*$", stdout, flags=re.MULTILINE))


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("strategies")
    return {strategy: run_play(tmp_path, strategy) for strategy in ("synap.ops.linear", "ansible.builtin.linear")}


def test_every_task_ends_as_under_ansibles_linear_strategy(both):
    ours, ansibles = both["synap.ops.linear"], both["ansible.builtin.linear"]
    assert ours[0].returncode == ansibles[0].returncode == 0, ours[0].stdout + ours[0].stderr
    assert recap(ours[0].stdout) == recap(ansibles[0].stdout) != {}
    assert recap(ours[0].stdout)["three"].split()[5] == "rescued=1"

    def comparable(kept):
        return {host: {k: v for k, v in values.items() if k != "set_in"} for host, values in kept.items()}

    assert comparable(ours[1]) == comparable(ansibles[1])
    assert ours[1]["two"] == {**ours[1]["two"], "doubled": 4, "maybe_skipped": False, "rescued": False,
                              "items": [1, 2], "first": "one", "broken": True, "broken_msg": True}
    assert ours[1]["three"]["rescued"] is True and ours[1]["one"]["maybe_skipped"] is True


def test_connection_free_actions_and_false_conditions_need_no_worker(both):
    done, kept, judged, playbook_pid = both["synap.ops.linear"]
    assert {values["set_in"] for values in kept.values()} == {str(playbook_pid)}
    assert judged == [str(playbook_pid)] * len(HOSTS)
    # Ansible's own strategy forks a worker for each.
    done, kept, judged, playbook_pid = both["ansible.builtin.linear"]
    assert str(playbook_pid) not in {values["set_in"] for values in kept.values()}
    assert len(judged) == len(HOSTS) and str(playbook_pid) not in judged


def test_a_role_argument_check_is_judged_once_for_the_same_templated_values():
    """Its result depends on the task and the values it checks, templated for the host: the same values take the
    first host's result; another value, a condition, or a specification that is a template is checked anew."""
    from types import SimpleNamespace

    from ansible.parsing.dataloader import DataLoader
    from ansible_collections.synap.ops.plugins.strategy.linear import StrategyModule

    strategy = SimpleNamespace(_loader=DataLoader(), _fixed_checks={})
    spec = {"level": {"type": "int"}, "name": {"type": "str"}}

    def key(variables, when=(), spec=spec, uuid="check"):
        task = SimpleNamespace(action="ansible.builtin.validate_argument_spec", when=list(when), _uuid=uuid,
                               name="Validating arguments", args={"argument_spec": spec, "provided_arguments": {}})
        return StrategyModule._argument_check_key(strategy, task, variables)

    one = key({"level": trust_as_template("{{ n // 10 + 1 }}"), "n": 1, "name": "a", "unrelated": 1})
    assert one is not None
    assert key({"level": trust_as_template("{{ n // 10 + 1 }}"), "n": 2, "name": "a", "unrelated": 2}) == one
    assert key({"level": 1, "name": "a"}) == one
    assert key({"level": 2, "name": "a"}) != one
    assert key({"level": 1}) != one  # an option not set is not one set
    assert key({"level": 1, "name": "a"}, uuid="another check") != one
    assert key({"level": 1, "name": "a"}, when=["n is even"]) is None
    assert key({"level": trust_as_template("{{ missing.field }}"), "name": "a"}) is None
    templated_spec = {"level": {"type": "int", "default": "{{ n }}"}}
    assert key({"level": 1}, spec=templated_spec, uuid="templated") is None


def test_a_compiled_template_is_reused_and_renders_with_the_variables_at_hand():
    templating_caches.install()
    source = "{{ greeting }} {{ name | upper }}"
    first = Templar(variables={"greeting": "hello", "name": "one"}).template(trust_as_template(source))
    kept_before = len(templating_caches._kept)
    second = Templar(variables={"greeting": "bye", "name": "two"}).template(trust_as_template(source))
    assert (first, second) == ("hello ONE", "bye TWO")
    assert len(templating_caches._kept) == kept_before  # the second compiled nothing new

    # A condition is kept under its text, and still decided by the variables of each use.
    assert Templar(variables={"n": 2}).evaluate_conditional(trust_as_template("n is even")) is True
    assert Templar(variables={"n": 3}).evaluate_conditional(trust_as_template("n is even")) is False

    # Compile settings a template gives itself make it another template.
    overridden = "#jinja2:variable_start_string:'[[', variable_end_string:']]'\n[[ greeting ]] {{ name }}"
    assert Templar(variables={"greeting": "hi", "name": "x"}).template(trust_as_template(overridden)) == "hi {{ name }}"
    assert Templar(variables={"greeting": "hi", "name": "x"}).template(trust_as_template(source.replace("upper", "lower"))) \
        == "hi x"


def test_a_name_no_plugin_has_is_looked_up_once_until_the_plugin_folders_change(tmp_path, monkeypatch):
    """Jinja's own filters and tests (length, none, ...) are no Ansible plugin; finding that out lists and loads
    every filter file of ansible.builtin, so it is kept. A folder of plugins added later is searched again."""
    import pkgutil

    from ansible.plugins.loader import filter_loader

    templating_caches.install()
    listed = []
    list_modules = pkgutil.iter_modules
    monkeypatch.setattr(pkgutil, "iter_modules", lambda *a, **k: listed.append(a) or list_modules(*a, **k))
    assert Templar(variables={"xs": [1, 2]}).template(trust_as_template("{{ xs | length }}")) == 2
    listed.clear()
    assert Templar(variables={"xs": [1, 2, 3]}).template(trust_as_template("{{ xs | length }}")) == 3
    assert listed == []  # the second look-up of length listed no plugin file

    with pytest.raises(Exception, match="synap_test_shout"):
        Templar(variables={}).template(trust_as_template("{{ 'a' | synap_test_shout }}"))
    (tmp_path / "shout.py").write_text(
        "class FilterModule:\n    def filters(self):\n        return {'synap_test_shout': lambda s: s.upper() + '!'}\n")
    filter_loader.add_directory(str(tmp_path))
    try:
        assert Templar(variables={}).template(trust_as_template("{{ 'a' | synap_test_shout }}")) == "A!"
    finally:
        filter_loader._extra_dirs.remove(str(tmp_path))
        filter_loader._clear_caches()


def test_a_template_one_worker_compiled_is_loaded_by_the_next(monkeypatch):
    """What only workers template would be compiled by each host's worker again: the first leaves the code in the
    controller's local temporary folder, and a process forked later loads it instead of compiling."""
    import uuid

    from ansible._internal._templating import _jinja_bits

    templating_caches.install()
    mark = uuid.uuid4().hex
    source = "{{ shared_by_workers | default('unset') }} " + mark
    worker = os.fork()
    if worker == 0:  # a worker: compiles and renders it, then leaves
        try:
            Templar(variables={}).template(trust_as_template(source))
        finally:
            os._exit(0)
    os.waitpid(worker, 0)
    compiled = []
    compile_code = _jinja_bits.AnsibleEnvironment._compile
    monkeypatch.setattr(_jinja_bits.AnsibleEnvironment, "_compile",
                        lambda self, *args: compiled.append(args) or compile_code(self, *args))
    assert Templar(variables={"shared_by_workers": "set"}).template(trust_as_template(source)) == f"set {mark}"
    assert compiled == []  # loaded, not compiled
    assert Templar(variables={}).template(trust_as_template("{{ 1 + 1 }} " + mark)) == f"2 {mark}"
    assert len(compiled) == 1  # a template no process compiled before is compiled here
