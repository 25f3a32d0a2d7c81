"""Fixtures for the Inngest stand-in and module tests (helpers live in standin_helpers)."""

from __future__ import annotations

import pytest
from standin_helpers import StandIn, WorkerApp


@pytest.fixture
def worker():
    app = WorkerApp()
    yield app
    app.stop()


@pytest.fixture
def start_standin():
    """``start_standin(**env)`` -> a running StandIn; every one started is stopped at the end."""
    started: list[StandIn] = []

    def start(**env):
        standin = StandIn({key.upper(): str(value) for key, value in env.items()})
        started.append(standin)
        return standin

    yield start
    for standin in started:
        standin.stop()


@pytest.fixture
def standin(start_standin):
    return start_standin(inngest_concurrency=4)
