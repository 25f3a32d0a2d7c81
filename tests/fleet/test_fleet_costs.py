"""What a fleet must not pay per host: the record written after every result (a 50-host run spent most of its time
rewriting a record that grew with each host), and one machine asked the same look-up under every name it has."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from ansible_collections.synap.ops.plugins.plugin_utils.paced_writer import PacedWriter
from ansible_collections.synap.ops.plugins.plugin_utils.shared_answers import answer_once
from robustness.targets import make_inventory

SYNAP_PLAY = Path(sys.executable).parent / "synap-play"


class SlowFile:
    """A write that takes a while, as a large record's does, counting what it wrote."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.value = 0
        self.written: list[int] = []

    def write(self):
        time.sleep(self.seconds)
        self.written.append(self.value)


def test_a_slow_write_is_paced_and_the_last_change_is_written_without_another():
    target = SlowFile(0.05)
    writer = PacedWriter(target.write)
    for value in range(1, 101):  # a hundred results in quick succession
        with writer.lock:
            target.value = value
        writer.changed()
    # At most a twentieth of the time goes to writing: far fewer writes than changes.
    assert 1 <= len(target.written) < 20
    # Nothing more happens in the run, and the timer still writes the last change.
    deadline = time.monotonic() + 5
    while target.written[-1] != 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert target.written[-1] == 100


def test_a_change_after_a_pause_is_written_at_once_and_flush_writes_at_once():
    target = SlowFile(0.01)
    writer = PacedWriter(target.write)
    target.value = 1
    writer.changed()
    assert target.written == [1]  # before changed() returns: a reader finds the record current
    time.sleep(0.4)  # more than nineteen writes' time
    target.value = 2
    writer.changed()
    assert target.written == [1, 2]
    target.value = 3
    writer.changed()  # too soon: on the timer
    target.value = 4
    writer.flush()
    assert target.written[-1] == 4


def test_the_timer_write_waits_for_a_change_in_progress():
    target = SlowFile(0.2)
    writer = PacedWriter(target.write)
    writer.changed()  # written: the next write waits about 3.8 s
    writer.changed()  # pending, on the timer
    with writer.lock:  # a change being made while the timer comes due is not written half done
        time.sleep(2.2)
        assert len(target.written) == 1
        target.value = 7
    writer.flush()
    assert target.written[-1] == 7


def _ask_in_a_worker(folder, question, host, counter, results):
    def ask():
        with open(counter, "a", encoding="utf-8") as out:
            out.write(f"{host}\n")
        time.sleep(0.3)  # the others arrive while the first asks
        return {"sessions": [1, 2, 3], "asked_by": host}

    answer, taken_from = answer_once(folder, question, host, ask)
    results.put((host, answer, taken_from))


def test_hosts_that_are_one_machine_ask_once_across_worker_processes(tmp_path):
    counter = tmp_path / "asked"
    question = {"task": "t-1", "module": "synap.ops.postgres_activity_info", "args": {"dsn": "x"}, "where": "local"}
    context = multiprocessing.get_context("fork")  # as Ansible's workers are made
    results = context.Queue()
    workers = [context.Process(target=_ask_in_a_worker, args=(str(tmp_path), question, f"synap-{n}", counter, results))
               for n in range(6)]
    for worker in workers:
        worker.start()
    answers = [results.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    askers = counter.read_text().split()
    assert len(askers) == 1
    assert all(answer == {"sessions": [1, 2, 3], "asked_by": askers[0]} for _host, answer, _taken in answers)
    assert sorted(taken for host, _answer, taken in answers if host != askers[0]) == [askers[0]] * 5
    # The asker asking again in the same task (an until retry) asks afresh; another question is its own.
    _ask_in_a_worker(str(tmp_path), question, askers[0], counter, results)
    _ask_in_a_worker(str(tmp_path), {**question, "task": "t-2"}, "synap-5", counter, results)
    assert len(counter.read_text().split()) == 3


@pytest.mark.parametrize("share", [True, False])
def test_a_fleet_of_local_hosts_asks_the_database_once_per_task(tmp_path, pg, share):
    """Ten local-connection hosts are one machine (the controller): each diagnosis look-up is asked by one of them
    and taken by the nine others; the record is still the whole fleet's. synap_share_lookups=false: each asks."""
    inventory = make_inventory(tmp_path, synap_database_url=pg.dsn(), synap_share_lookups=share)
    hosts = {f"synap-{n:02d}": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
             for n in range(10)}
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"synap": {"hosts": hosts}}}}),
                                         encoding="utf-8")
    incidents = tmp_path / "incidents"
    proc = subprocess.run([str(SYNAP_PLAY), "database-connection-failure", "--check", "-i", str(inventory),
                           "--incidents-dir", str(incidents), "--no-first-look"],
                          capture_output=True, text=True, timeout=600, check=False)
    folder = next(incidents.glob("*/incident.json")).parent
    record = json.loads((folder / "incident.json").read_text(encoding="utf-8"))
    assert record["status"] != "running", proc.stderr[-2000:]
    assert sorted(record["hosts"]) == sorted(hosts)
    assessed = [event["event_data"]["res"] for event in map(json.loads, map(Path.read_text,
                                                                              (folder / "artifacts").rglob("*.json")))
                if event.get("event") == "runner_on_ok"
                and event["event_data"].get("task", "").startswith("Assess | PostgreSQL and API")]
    assert len(assessed) == 10
    # Each look-up is asked by one host, not necessarily the same host for every look-up: the task's look-ups run
    # side by side, and another host can be first to ask the second one.
    for source in assessed[0]["sources"]:
        askers = [res for res in assessed if source not in res["taken_from"]]
        assert len(askers) == (1 if share else 10), source
        assert all(res["sources"][source] == askers[0]["sources"][source] for res in assessed) or not share
    assert all(set(res["taken_from"]) <= set(res["sources"]) for res in assessed)
    assert all(res["sources"]["db"]["reachable"] is True for res in assessed)
    # Nothing of the run's shared answers is left behind.
    assert not list(Path(tempfile.gettempdir()).glob(f"synap-play-answers-{record['id']}-*"))
