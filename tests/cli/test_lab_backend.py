"""Which backend `synap-play lab up` starts, and what lab/.env keeps of it (no Docker: the choice and the file)."""

from __future__ import annotations

import pytest

from synap_play.lab import LabError, backend, faults


@pytest.fixture
def project(tmp_path, monkeypatch):
    for name in (backend.CHOICE_ENV, backend.METRICS_ENV, *backend.SOURCE_ENVS):
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "synap-play"
    (root / "lab").mkdir(parents=True)
    return root


def archive_beside(root):
    systems = root.parent / "shared" / "systems"
    systems.mkdir(parents=True)
    path = systems / "synap-backend-28c3b0b.tar.gz"
    path.write_bytes(b"")
    return path


def test_the_real_backend_when_its_source_is_beside_the_project(project):
    source = archive_beside(project)
    chosen = backend.chosen(project)
    assert (chosen.kind, chosen.source, chosen.metrics) == (backend.REAL, source, False)


def test_the_stand_ins_when_the_source_is_here_but_node_is_not_and_why(project, monkeypatch):
    archive_beside(project)
    monkeypatch.setenv("PATH", str(project))  # no node, npm or patch
    chosen = backend.chosen(project)
    assert chosen.kind == backend.STANDIN and "npm is missing" in chosen.why
    monkeypatch.setenv(backend.CHOICE_ENV, "real")
    with pytest.raises(LabError, match="npm is missing"):
        backend.chosen(project)


def test_the_stand_ins_without_a_source_and_why(project):
    chosen = backend.chosen(project)
    assert chosen.kind == backend.STANDIN and "no synap-backend source" in chosen.why


def test_asking_for_the_real_one_without_a_source_names_what_to_set(project, monkeypatch):
    monkeypatch.setenv(backend.CHOICE_ENV, "real")
    with pytest.raises(LabError, match="SYNAP_LAB_BACKEND_DIR"):
        backend.chosen(project)


def test_a_named_source_that_does_not_exist_is_an_error(project, monkeypatch):
    monkeypatch.setenv("SYNAP_LAB_BACKEND_DIR", str(project / "nowhere"))
    with pytest.raises(LabError, match="does not exist"):
        backend.chosen(project)


def test_an_unknown_choice_is_an_error(project, monkeypatch):
    monkeypatch.setenv(backend.CHOICE_ENV, "staging")
    with pytest.raises(LabError, match="use real or standin"):
        backend.chosen(project)


def test_stand_ins_by_name_even_with_a_source(project, monkeypatch):
    archive_beside(project)
    monkeypatch.setenv(backend.CHOICE_ENV, "standin")
    assert backend.chosen(project).kind == backend.STANDIN


def test_lab_env_keeps_the_choice_under_names_a_shell_does_not_export(project, monkeypatch):
    source = archive_beside(project)
    monkeypatch.setenv(backend.METRICS_ENV, "1")
    chosen = backend.chosen(project)
    backend.write_env(project / "lab", chosen, "synap-lab-backend:abc-def")
    text = (project / "lab" / ".env").read_text()
    assert "LAB_BACKEND=real" in text and "LAB_BACKEND_IMAGE=synap-lab-backend:abc-def" in text
    assert "SYNAP_LAB_BACKEND=" not in text  # compose prefers the shell's value to .env's: not the user's variable
    assert backend.running(project / "lab") == backend.Backend(backend.REAL, source, True)
    backend.remove_env(project / "lab")
    assert backend.running(project / "lab") is None


class FakeLab:
    """Only what the fault catalog asks of a lab to decide where a fault happens."""

    def __init__(self, kind):
        self.kind = kind

    def running_backend(self):
        return backend.Backend(self.kind)


def test_a_fault_without_a_counterpart_on_the_real_backend_is_refused_with_the_reason():
    with pytest.raises(LabError, match="no counterpart on Synap's real backend: the real backend's pool"):
        faults.inject(FakeLab(backend.REAL), "connection-leak")


def test_every_fault_happens_on_the_stand_ins_and_on_the_real_backend_unless_it_says_why_not():
    for fault in faults.FAULTS.values():
        assert fault.possible(FakeLab(backend.STANDIN)), fault.name
        assert fault.possible(FakeLab(backend.REAL)) != bool(fault.standin_only), fault.name
    assert sorted(name for name, fault in faults.FAULTS.items() if fault.standin_only) == [
        "connection-leak", "external-down"]


def test_lab_down_passes_again_when_a_container_started_during_the_removal_held_the_network(project, monkeypatch):
    """Regression: a run recreating the api while `lab down` ran left compose failing on the network ("has active
    endpoints"); the second pass removes the late container and the network. (Docker replaced at the boundary.)"""
    from synap_play.lab import stack

    calls = []

    def compose(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise LabError("docker compose down failed: error while removing network: network synap-lab_default id 1 "
                           "has active endpoints")

    monkeypatch.setattr(stack.Lab, "check_engine", lambda self: None)
    monkeypatch.setattr(stack.Lab, "compose", compose)
    monkeypatch.setattr(stack.time, "sleep", lambda seconds: None)
    stack.Lab(root=project).down()
    assert [args[0] for args in calls] == ["down", "down"]


def test_lab_down_reports_any_other_failure_at_once(project, monkeypatch):
    from synap_play.lab import stack

    def compose(self, *args, **kwargs):
        raise LabError("docker compose down failed: permission denied")

    monkeypatch.setattr(stack.Lab, "check_engine", lambda self: None)
    monkeypatch.setattr(stack.Lab, "compose", compose)
    with pytest.raises(LabError, match="permission denied"):
        stack.Lab(root=project).down()
