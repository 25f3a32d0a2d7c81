"""The lab's deploy checkout (lab/state/deploy): the git history the api runs its release from, which the
bad-deploy fault commits to and high-error-rate's rollback reverts."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from synap_play.lab import LabError, backend

# The deploy checkout's release as the lab came up, which `synap-play lab reset` returns to.
SEED_TAG = "lab-seed"


@dataclass(frozen=True)
class DeployCheckout:
    path: Path
    standin_release: Path  # the stand-in api's release.py, whose short history a stand-in lab's checkout holds

    def exists(self) -> bool:
        return (self.path / ".git").is_dir()

    def git(self, *args: str) -> str:
        proc = subprocess.run(["git", "-C", str(self.path), *args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise LabError(f"git {' '.join(args)} in {self.path} failed: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def init(self, backend_image: str | None = None) -> None:
        """The stand-in's short real history, or the real backend's release from BACKEND_IMAGE; kept when it is
        there already."""
        if self.exists():
            return
        self.path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.name", "Synap Deploy")
        self.git("config", "user.email", "deploy@synap.invalid")
        if backend_image:
            backend.init_release(self.path, backend_image, self.git)
        else:
            self._init_standin_history()
        self.git("tag", SEED_TAG)

    def _init_standin_history(self) -> None:
        release = self.standin_release.read_text()
        history = [
            ("release 2026.11.1: workspace overview endpoint", release.replace('"2026.11.2"', '"2026.11.1"')
             .replace('"plan": billing.get("plan", "free"),\n', "")),
            ("release 2026.11.2: show the workspace plan on the overview", release),
        ]
        for message, content in history:
            (self.path / "release.py").write_text(content)
            self.git("add", "release.py")
            self.git("commit", "-q", "-m", message)
