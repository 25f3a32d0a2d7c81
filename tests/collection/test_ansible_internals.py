"""The ansible-core internals synap.ops relies on: each is there, and behaves as the collection relies on it.

plugins/plugin_utils/inner_module.py fetches each with internal(), which stops the plugin from loading, in one line
naming the internal and the supported ansible-core versions, when it is missing. These tests say whether a new
ansible-core still does what the collection needs, before a run finds out:

- ansible.executor.module_common._apply_action_arg_defaults: the play's module_defaults (by module, and by
  meta/runtime.yml's action groups) are merged for the module an action runs, the action's own arguments winning
  (with_module_defaults templates them: ansible-core 2.19.0 to 2.19.5 did not);
- ActionBase._execute_module sends the module to the connection through ActionBase._low_level_execute_command,
  which synap.ops.diagnose overrides to let look-ups run side by side; with ActionBase._is_pipelining_enabled
  saying they may, and ConnectionBase._connect connecting once before the threads;
- the linear strategy's _queue_task, Task._resolve_conditional, TaskExecutor and AnsibleEnvironment's compile and
  compile_expression, which synap.ops.linear and its compiled-code keeper step into (tests/collection/
  test_linear_strategy.py shows a play ends alike under it and under Ansible's own).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Lock, Thread
from types import SimpleNamespace

import pytest
import yaml
from ansible.executor import module_common
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play import Play
from ansible.plugins.action import ActionBase
from ansible.release import __version__ as ansible_core_version
from ansible.template import Templar, trust_as_template
from ansible.vars.manager import VariableManager
from ansible_collections.synap.ops.plugins.plugin_utils import inner_module
from packaging.specifiers import SpecifierSet

from synap_play.project import collections_path

ROOT = Path(__file__).resolve().parents[2]
SLOW_ANSWER = 3.0  # seconds each look-up of the side-by-side test waits for its answer: longer than a module's start


def test_the_supported_range_is_the_one_the_collection_and_the_package_declare():
    supported = SpecifierSet(inner_module.SUPPORTED_ANSIBLE_CORE)
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text(encoding="utf-8"))
    assert SpecifierSet(runtime["requires_ansible"]) == supported
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    [pin] = [d for d in dependencies if d.startswith("ansible-core")]
    assert SpecifierSet(pin.removeprefix("ansible-core")) == supported
    assert supported.contains(ansible_core_version), f"ansible-core {ansible_core_version} is not {supported}"


def test_the_action_plugins_find_every_internal_they_use():
    from ansible_collections.synap.ops.plugins.action import diagnose, mitigate  # checked when imported

    assert diagnose.ActionModule._low_level_execute_command is not ActionBase._low_level_execute_command
    assert mitigate.with_module_defaults is inner_module.with_module_defaults


def test_the_strategy_finds_every_internal_it_uses():
    from ansible._internal._templating._jinja_bits import AnsibleEnvironment
    from ansible_collections.synap.ops.plugins.strategy import linear  # checked when imported

    assert linear.StrategyModule._queue_task is not linear.AnsibleLinearStrategy._queue_task
    assert "compile" in vars(AnsibleEnvironment)  # the compiled-code keeper is installed


def test_a_missing_or_changed_internal_stops_the_plugin_in_one_line():
    with pytest.raises(inner_module.UnsupportedAnsibleCore) as missing:
        inner_module.internal(module_common, "_no_such_internal")
    message = str(missing.value)
    assert "\n" not in message and "ansible.executor.module_common._no_such_internal" in message
    assert f"ansible-core {ansible_core_version} has none" in message
    assert message.endswith(f"use ansible-core {inner_module.SUPPORTED_ANSIBLE_CORE}")

    with pytest.raises(inner_module.UnsupportedAnsibleCore) as changed:
        inner_module.internal(ActionBase, "_low_level_execute_command", ("command", "sudoable"))
    assert "ansible.plugins.action.ActionBase._low_level_execute_command" in str(changed.value)
    assert "has one taking (cmd, sudoable), not (command, sudoable)" in str(changed.value)


@pytest.fixture
def play_task():
    """A task of a play with module_defaults by action group (meta/runtime.yml) and by module, and its templar."""
    loader = DataLoader()
    play = Play.load({
        "hosts": "localhost", "gather_facts": False,
        "module_defaults": {
            "group/synap.ops.postgres": {"dsn": trust_as_template("{{ the_dsn }}"), "connect_timeout": 9},
            "synap.ops.deploy_info": {"recent_seconds": 60, "count": 5},
        },
        "tasks": [{"name": "Assess | look", "synap.ops.diagnose": {"sources": {}}}],
    }, variable_manager=VariableManager(loader=loader), loader=loader)
    templar = Templar(loader=loader, variables={"the_dsn": "postgresql://ops@db.internal/synap"})
    return play.get_tasks()[0][0], templar


def test_the_play_module_defaults_are_merged_for_the_module_an_action_runs(play_task):
    task, templar = play_task
    apply = inner_module._apply_action_arg_defaults
    # By action group (meta/runtime.yml); the action's own arguments win.
    merged = apply("synap.ops.postgres_activity_info", task, {"connect_timeout": 2}, templar)
    assert set(merged) == {"dsn", "connect_timeout"} and merged["connect_timeout"] == 2
    # By module name.
    assert apply("synap.ops.deploy_info", task, {"repo": "/srv/deploy", "count": 1}, templar) == {
        "repo": "/srv/deploy", "count": 1, "recent_seconds": 60}
    # A module with no defaults gets its arguments as they are.
    assert apply("synap.ops.inngest_info", task, {"url": "http://inngest:8288"}, templar) == {"url": "http://inngest:8288"}


def test_module_defaults_reach_the_module_templated(play_task):
    """ansible-core 2.19.0 to 2.19.5 leave the merged defaults untemplated: with_module_defaults templates them."""
    from ansible.plugins.loader import module_loader

    task, templar = play_task
    action = SimpleNamespace(_task=task, _templar=templar, _shared_loader_obj=SimpleNamespace(module_loader=module_loader))
    assert inner_module.with_module_defaults(action, "synap.ops.postgres_activity_info", {"connect_timeout": 2}) == {
        "dsn": "postgresql://ops@db.internal/synap", "connect_timeout": 2}
    given = {"dsn": "postgresql://given@db/synap"}  # the task's own value, not the default's template, is used
    assert inner_module.with_module_defaults(action, "synap.ops.postgres_activity_info", given) == {
        "dsn": "postgresql://given@db/synap", "connect_timeout": 9}
    assert inner_module.with_module_defaults(action, "synap.ops.no_such_module", {"a": 1}) == {"a": 1}


class SlowHandler(BaseHTTPRequestHandler):
    """Answers after SLOW_ANSWER seconds, counting the most requests it was answering at once."""

    lock = Lock()
    in_flight = 0
    most_at_once = 0

    def do_GET(self):  # noqa: N802 - the base class's naming
        cls = type(self)
        with cls.lock:
            cls.in_flight += 1
            cls.most_at_once = max(cls.most_at_once, cls.in_flight)
        time.sleep(SLOW_ANSWER)
        with cls.lock:
            cls.in_flight -= 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_server():
    SlowHandler.in_flight = SlowHandler.most_at_once = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_look_ups_run_side_by_side_through_the_low_level_execute_command(tmp_path, slow_server):
    """Each look-up waits SLOW_ANSWER seconds for its answer: only if the diagnose action's turn is given up while a
    module runs (its _low_level_execute_command, through which _execute_module sends the module) are both requests
    in flight at once; with the turn held, the second module would start only when the first had its answer."""
    sources = {name: {"module": "synap.ops.external_info",
                      "args": {"endpoints": [{"name": name, "url": slow_server, "timeout": 10}]}}
               for name in ("one", "two")}
    play = [{"name": "diagnose", "hosts": "localhost", "gather_facts": False,
             "tasks": [{"name": "Assess | side by side", "synap.ops.diagnose": {"sources": sources}, "register": "found"},
                       {"name": "keep", "ansible.builtin.copy": {"content": "{{ found | to_json }}",
                                                                  "dest": str(tmp_path / "found.json")}}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False), encoding="utf-8")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(collections_path(ROOT)),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e",
                           f"ansible_python_interpreter={sys.executable}", str(tmp_path / "play.yml")],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    found = json.loads((tmp_path / "found.json").read_text(encoding="utf-8"))
    assert found["concurrent"] is True  # _is_pipelining_enabled: the modules share no remote file
    assert all(found["sources"][name]["endpoints"][0]["ok"] for name in sources), found["sources"]
    assert SlowHandler.most_at_once == 2, found["seconds"]
