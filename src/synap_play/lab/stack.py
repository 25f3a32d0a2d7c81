"""Driving the lab's docker compose project: its image, services, health, and bringing it up and down (its deploy
checkout is checkout.py's, direct access to its servers access.py's)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from synap_play.lab import LabError, access, backend, monitoring, ssh
from synap_play.lab.checkout import DeployCheckout
from synap_play.project import project_root

PROJECT_NAME = "synap-lab"
SERVICES = ("postgres", "inngest", "hub", "api", "gateway", "jobs")
LATEST_TAG = "synap-lab-base:latest"

Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


@dataclass
class Lab:
    root: Path = field(default_factory=project_root)
    progress: Progress = _quiet
    _image_name: str | None = field(default=None, repr=False)

    @property
    def lab_dir(self) -> Path:
        return self.root / "lab"

    @property
    def state_dir(self) -> Path:
        return self.lab_dir / "state"

    @property
    def deploy(self) -> DeployCheckout:
        return DeployCheckout(self.state_dir / "deploy", self.lab_dir / "deploy" / "release.py")

    # --- docker -------------------------------------------------------------------------------------------

    def check_engine(self) -> None:
        if shutil.which("docker") is None:
            raise LabError("docker is not installed; run scripts/docker-engine install")
        if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
            raise LabError("the Docker engine is not answering; start it with scripts/docker-engine start")
        if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0:
            raise LabError("docker compose v2 is missing; run scripts/docker-engine install")

    def image(self, build: bool = True) -> str:
        script = self.lab_dir / "image" / "build"
        args = [str(script)] if build else [str(script), "--name"]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in proc.stderr:
            self.progress(line.rstrip())
        lines = proc.stdout.read().split()
        if proc.wait() != 0 or not lines:
            raise LabError(f"building the lab image failed; run {script} to see why")
        name = lines[-1]
        if build:
            # So plain `docker compose` commands in lab/ find the image without SYNAP_LAB_IMAGE set.
            subprocess.run(["docker", "tag", name, LATEST_TAG], check=False, capture_output=True)
        return name

    def compose(self, *args: str, check: bool = True, capture: bool = True, timeout: float | None = 600,
                settings: dict[str, str] | None = None):
        """docker compose on the lab's project; SETTINGS are variables compose.yaml reads, over lab/.env's."""
        command = ["docker", "compose", "--project-directory", str(self.lab_dir), "-f",
                   str(self.lab_dir / "compose.yaml"), "--profile", "faults", *args]
        if self._image_name is None:
            self._image_name = self.image(build=False)
        env = {**os.environ, "SYNAP_LAB_IMAGE": self._image_name, **self._ssh_env(), **(settings or {})}
        proc = subprocess.run(command, capture_output=capture, text=True, timeout=timeout, env=env)
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout or "").strip().splitlines()
            raise LabError(f"docker compose {' '.join(args)} failed: {detail[-1] if detail else 'no output'}")
        return proc

    def _ssh_env(self) -> dict[str, str]:
        try:
            return ssh.compose_env(self.lab_dir)
        except LabError:  # only starting the SSH host needs it; that step says what is missing
            return {}

    def services(self) -> dict[str, dict]:
        """State of each container by service: {"api": {"state": "running", "health": "healthy"}, ...}."""
        proc = self.compose("ps", "--all", "--format", "json", check=False)
        found: dict[str, dict] = {}
        for line in (proc.stdout or "").splitlines():
            line = line.strip()
            if not line:
                continue
            items = json.loads(line)
            for item in items if isinstance(items, list) else [items]:
                found[item["Service"]] = {"state": item.get("State", ""), "health": item.get("Health", "")}
        return found

    def wait_healthy(self, services=SERVICES, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            states = self.services()
            waiting = [name for name in services
                       if states.get(name, {}).get("state") != "running"
                       or states.get(name, {}).get("health") not in ("healthy", "")]
            if not waiting:
                return
            exited = [name for name in waiting if states.get(name, {}).get("state") in ("exited", "dead")]
            if exited:
                raise LabError(f"{', '.join(exited)} exited; see 'docker compose logs {exited[0]}' in lab/")
            if time.monotonic() > deadline:
                raise LabError(f"not healthy after {int(timeout)} s: {', '.join(waiting)}; "
                               "see 'docker compose logs' in lab/")
            time.sleep(1)

    # --- lifecycle ---------------------------------------------------------------------------------------

    def up(self, chosen: backend.Backend | None = None) -> str:
        """Bring the lab up with CHOSEN backend (default: as the environment asks, see backend.chosen)."""
        self.check_engine()
        chosen = self._backend_to_start(chosen)
        self.progress("image: checking (builds once per machine, about a minute)")
        image = self.image()
        self.progress(f"image: {image}")
        backend_image = None
        if chosen.kind == backend.REAL:
            self.progress("backend: Synap's real backend (built once per source and recipe, a few minutes; "
                          f"{backend.CHOICE_ENV}=standin runs the stand-ins)")
            backend_image = backend.image(self.lab_dir, chosen, image, self.progress)
        self.progress(f"backend: {chosen.describe()}")
        backend.write_env(self.lab_dir, chosen, backend_image)
        self.deploy.init(backend_image)
        self._image_name = image
        self.progress(f"starting {', '.join(SERVICES)}")
        self.compose("up", "-d", "--remove-orphans", *SERVICES)
        self.wait_ready()
        if chosen.kind == backend.REAL:
            self.seed_real_backend()
        self.start_monitoring()
        self.start_ssh_host()
        return image

    def wait_ready(self) -> None:
        """Every service healthy, the worker's functions registered with Inngest, the api answering."""
        self.progress("waiting for health checks")
        self.wait_healthy()
        access.wait_for("the jobs worker to register its functions", access.functions_registered, timeout=60)
        # Healthy containers are not yet a reachable API: the gateway learns its replicas within a second.
        access.wait_for("the api to answer through the gateway", access.api_answers, timeout=60)

    def _backend_to_start(self, chosen: backend.Backend | None) -> backend.Backend:
        """The backend asked for; refused while the lab runs the other one (its data and checkout are that one's)."""
        chosen = chosen or backend.chosen(self.root)
        current = backend.running(self.lab_dir)
        if current is not None and current.kind != chosen.kind and self.services():
            raise LabError(f"the lab runs the {current.kind} backend and {chosen.kind} was asked for; "
                           "'synap-play lab down' first")
        return chosen

    def running_backend(self) -> backend.Backend | None:
        """The backend the lab was brought up with; None when it is not up."""
        return backend.running(self.lab_dir)

    def seed_real_backend(self) -> None:
        """The real backend's data of realistic volume (lab/backend/seed.sql), once per lab: its migrations made
        the schema, empty."""
        if access.sql("SELECT count(*) FROM workspaces")[0][0]:
            return
        self.progress("seeding the real backend's database (lab/backend/seed.sql)")
        statements = (self.lab_dir / "backend" / "seed.sql").read_text(encoding="utf-8")
        access.sql(statements, timeout=300)

    def start_ssh_host(self) -> None:
        """The host inventory/lab-ssh reaches over SSH, with a key pair and host key of this lab's own."""
        ssh.prepare(self.lab_dir, self.state_dir)
        ssh.compose_env(self.lab_dir)  # says what is missing, if anything
        self.progress("starting the SSH host (inventory/lab-ssh)")
        self.compose("up", "-d", ssh.SERVICE)
        self.wait_healthy([ssh.SERVICE])
        access.wait_for("an SSH login to the lab's SSH host", lambda: ssh.reachable(self.state_dir), timeout=60)

    def start_monitoring(self) -> None:
        """After the services are healthy, so that a lab coming up pages nobody."""
        monitoring.write_alertmanager_config(self.root, self.state_dir)
        self.progress(f"starting {', '.join(monitoring.SERVICES)}")
        self.compose("up", "-d", *monitoring.SERVICES)
        self.wait_healthy(monitoring.SERVICES)
        access.wait_for("Prometheus to scrape every target", lambda: not monitoring.targets_down(), timeout=60)

    def down(self) -> None:
        self.check_engine()
        removal = ("down", "--volumes", "--remove-orphans", "--timeout", "5")
        try:
            self.compose(*removal)
        except LabError as error:
            if "active endpoints" not in str(error):
                raise
            # A container started while compose removed the others (a run recreating the api) still held the
            # network; the second pass removes it, then the network.
            time.sleep(2)
            self.compose(*removal)
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        backend.remove_env(self.lab_dir)

    def recreate(self, *services: str, settings: dict[str, str] | None = None) -> None:
        """Recreate services so they start afresh (the api then loads the deploy checkout's release again), with
        compose.yaml's SETTINGS if given, else its defaults."""
        self.compose("up", "-d", "--no-deps", "--force-recreate", *services, settings=settings)
        if "api" in services:
            # A lab started before the gateway existed gets it here, once the old api has let go of its port.
            self.compose("up", "-d", "--no-deps", "gateway")
            self.wait_healthy(["api"])
            access.wait_for("the api to answer through the gateway", access.api_answers, timeout=60)

    def start_service(self, *services: str, settings: dict[str, str] | None = None) -> None:
        self.compose("up", "-d", "--no-deps", *services, settings=settings)

    def endpoints(self) -> dict[str, str]:
        running = backend.running(self.lab_dir)
        return {
            "backend": running.describe() if running else "not recorded",
            "api": access.API_URL,
            "inngest": access.INNGEST_URL,
            "hub-protocol": access.HUB_URL,
            "prometheus": monitoring.PROMETHEUS_URL,
            "alertmanager": monitoring.ALERTMANAGER_URL,
            "postgres": access.DATABASE_URL,
            "compose project": f"{PROJECT_NAME} (cd {self.lab_dir} && docker compose ps)",
            "deploy checkout": str(self.deploy.path),
            "ssh host": f"{ssh.USER}@127.0.0.1:{ssh.port()} (inventory/lab-ssh)",
        }

