"""The lab's SSH host: what `synap-play lab up` prepares for it, and how the inventory reaches it.

inventory/lab-ssh reaches the compose service `ssh` on a loopback port as staging is reached: over SSH, as the user
deploy, with a key pair and a pinned host key. Both keys are made here once per lab (lab/state/ssh, never
committed); the host's docker CLI and compose plugin are this machine's, mounted, talking to its engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from synap_play.lab import LabError

SERVICE = "ssh"
USER = "deploy"
DEFAULT_PORT = 2222
KEY = "id_ed25519"  # the client key inventory/lab-ssh names
HOST_KEY = "ssh_host_ed25519_key"
KNOWN_HOSTS = "known_hosts"
# Where docker looks for CLI plugins, most specific first (docker's own list).
PLUGIN_DIRS = ("~/.docker/cli-plugins", "/usr/local/lib/docker/cli-plugins", "/usr/local/libexec/docker/cli-plugins",
               "/usr/lib/docker/cli-plugins", "/usr/libexec/docker/cli-plugins")


def port() -> int:
    return int(os.environ.get("SYNAP_LAB_SSH_PORT") or DEFAULT_PORT)


def prepare(lab_dir: Path, state_dir: Path) -> None:
    """The client key pair and the host key (made once per lab), authorized and pinned."""
    folder = state_dir / "ssh"
    folder.mkdir(parents=True, exist_ok=True)
    for name, comment in ((KEY, "synap-play lab"), (HOST_KEY, "synap-play lab ssh host")):
        if not (folder / name).is_file():
            _keygen(folder / name, comment)
    # The container's sshd reads them as root; the client key stays its owner's alone.
    (folder / KEY).chmod(0o600)
    (folder / "authorized_keys").write_text((folder / f"{KEY}.pub").read_text())
    host_key = (folder / f"{HOST_KEY}.pub").read_text().split()
    (folder / KNOWN_HOSTS).write_text(f"[127.0.0.1]:{port()} {host_key[0]} {host_key[1]}\n")


def compose_env(lab_dir: Path) -> dict[str, str]:
    """What the compose service is started with: the machine's docker CLI and compose plugin, the lab folder's path,
    the uid that owns it and the Docker socket's group."""
    docker = shutil.which("docker")
    plugin = next((Path(d).expanduser() / "docker-compose" for d in PLUGIN_DIRS
                   if (Path(d).expanduser() / "docker-compose").exists()), None)
    if docker is None or plugin is None:
        raise LabError("the SSH host needs this machine's docker CLI and compose plugin; run scripts/docker-engine install")
    socket = Path("/var/run/docker.sock")
    return {
        "SYNAP_LAB_DIR": str(lab_dir.resolve()),
        "SYNAP_LAB_DOCKER_CLI": os.path.realpath(docker),
        "SYNAP_LAB_COMPOSE_PLUGIN": os.path.realpath(plugin),
        "SYNAP_LAB_SSH_UID": str(lab_dir.stat().st_uid),
        "SYNAP_LAB_DOCKER_GID": str(socket.stat().st_gid if socket.exists() else 0),
    }


def reachable(state_dir: Path, timeout: float = 5) -> bool:
    """An SSH login works, as inventory/lab-ssh logs in (the key, the pinned host key, no password)."""
    folder = state_dir / "ssh"
    command = ["ssh", "-p", str(port()), "-i", str(folder / KEY), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
               "-o", f"UserKnownHostsFile={folder / KNOWN_HOSTS}", "-o", "StrictHostKeyChecking=yes",
               "-o", f"ConnectTimeout={int(timeout)}", f"{USER}@127.0.0.1", "true"]
    try:
        return subprocess.run(command, capture_output=True, timeout=timeout + 5).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _keygen(path: Path, comment: str) -> None:
    if shutil.which("ssh-keygen") is None:
        raise LabError("ssh-keygen is missing (Debian: openssh-client); the lab's SSH host needs a key pair")
    proc = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"ssh-keygen failed: {proc.stderr.strip()}")
