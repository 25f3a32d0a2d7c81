"""The lab the tests of this folder share: brought up once per module, down after it."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from labtools import cli

from synap_play.lab.stack import Lab


@pytest.fixture(scope="module")
def lab():
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode:
        pytest.skip("no Docker engine (scripts/docker-engine start)")
    cli("up")
    yield Lab()
    cli("down")
