#!/bin/sh
# The lab's SSH host (compose service `ssh`, inventory/lab-ssh): a deploy user holding the lab's public key, and
# sshd with key-only authentication and the host key the lab pinned in its known_hosts (lab/state/ssh).
set -eu
keys=/srv/ssh-keys
if ! id deploy >/dev/null 2>&1; then
  # deploy has the uid of whoever owns the lab's folder, so that it writes the deploy checkout as they do (the
  # rollback commits there); and the group of the Docker socket, so that its docker compose reaches the engine.
  useradd --non-unique --uid "$SYNAP_SSH_UID" --create-home --home-dir /home/deploy --shell /bin/bash deploy
  # No password, but not a locked account either: without PAM, sshd refuses a locked account even a key.
  usermod --password '*' deploy
  if [ "$SYNAP_DOCKER_GID" != 0 ]; then
    getent group "$SYNAP_DOCKER_GID" >/dev/null || groupadd --gid "$SYNAP_DOCKER_GID" docker-host
    usermod -aG "$(getent group "$SYNAP_DOCKER_GID" | cut -d: -f1)" deploy
  fi
fi
install -d -m 700 -o deploy /home/deploy/.ssh
install -m 600 -o deploy "$keys/authorized_keys" /home/deploy/.ssh/authorized_keys
install -m 600 "$keys/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
install -m 644 "$keys/ssh_host_ed25519_key.pub" /etc/ssh/ssh_host_ed25519_key.pub
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e -f /srv/ssh-host/sshd_config
