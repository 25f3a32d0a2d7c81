"""A real, small compose project for module tests: busybox containers from a locally imported image.

No registry is reachable here, so the image is built with ``docker import`` from the host's static busybox
(Debian's busybox-static); it is a few MB and starts in milliseconds.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

IMAGE = "synap-test-busybox:1"

# Docker timestamps stdout and stderr lines as it reads each stream, so web pauses after its stderr line:
# otherwise "ready" may be logged before it and the last line would not be "ready".
COMPOSE_FILE = """\
services:
  web:
    image: {image}
    init: true
    command: ["sh", "-c", "echo web starting; echo 'ERROR first failure'; echo 'global-validator routed'; \
echo 'ERROR second failure'; echo 'ERROR third failure' >&2; sleep 0.2; echo ready; exec sleep 86400"]
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
      timeout: 2s
      retries: 3
  worker:
    image: {image}
    init: true
    command: ["sh", "-c", "echo worker up; exec sleep 86400"]
"""


def docker_unavailable_reason() -> str | None:
    """Why Docker tests cannot run here, or None when the engine and compose v2 answer."""
    if not shutil.which("docker"):
        return "no docker client installed"
    try:
        info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, timeout=15)
        compose = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "docker engine does not answer (start it with scripts/docker-engine start)"
    if info.returncode != 0:
        return "no Docker engine answers (start it with scripts/docker-engine start)"
    if compose.returncode != 0:
        return "docker compose v2 plugin missing (scripts/docker-engine install)"
    return None


def ensure_image() -> str:
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode == 0:
        return IMAGE
    busybox = shutil.which("busybox")
    if not busybox:
        pytest.skip("busybox is needed to build the test image: apt-get install -y busybox-static")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            if applet != "busybox":
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
        for directory in ("tmp", "proc", "sys", "dev", "etc"):
            entry = tarfile.TarInfo(directory)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(entry)
    subprocess.run(
        ["docker", "import", "--change", "ENV PATH=/bin", "--change", 'CMD ["/bin/sh"]', "-", IMAGE],
        input=archive.getvalue(),
        capture_output=True,
        check=True,
    )
    return IMAGE


class Project:
    """A running compose project with a unique name, torn down with everything it created."""

    def __init__(self, directory: Path):
        reason = docker_unavailable_reason()
        if reason:
            pytest.skip(reason)
        self.project_dir = directory
        self.project_name = f"synap-test-{uuid.uuid4().hex[:10]}"
        (directory / "compose.yaml").write_text(COMPOSE_FILE.format(image=ensure_image()))

    @property
    def args(self) -> dict:
        return {"project_dir": str(self.project_dir), "project_name": self.project_name}

    def compose(self, *args: str) -> str:
        command = ["docker", "compose", "--project-directory", str(self.project_dir), "-p", self.project_name, *args]
        return subprocess.run(command, capture_output=True, text=True, check=True, timeout=120).stdout

    def up(self) -> Project:
        self.compose("up", "--detach", "--wait", "--wait-timeout", "60")
        return self

    def container_ids(self, service: str) -> list[str]:
        return self.compose("ps", "--quiet", service).split()

    def started_at(self, service: str) -> list[str]:
        ids = self.container_ids(service)
        if not ids:
            return []
        out = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.StartedAt}}", *ids], capture_output=True, text=True, check=True
        ).stdout
        return out.split()

    def down(self) -> None:
        subprocess.run(
            [
                "docker",
                "compose",
                "--project-directory",
                str(self.project_dir),
                "-p",
                self.project_name,
                "down",
                "--timeout",
                "1",
                "--volumes",
                "--remove-orphans",
            ],
            capture_output=True,
            timeout=120,
        )
