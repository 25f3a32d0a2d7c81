"""The first look for a host the playbook reaches over SSH: its look-ups answered on that host, in one SSH session.

A scenario's look-ups must run where the playbook's modules run: the endpoints in the plan are the ones that host
sees (``postgres:5432`` on the compose network, a socket, a private address), and the compose and git look-ups
read that host's engine and checkout. Ansible would ship and start one module per look-up; here one SSH session
(Ansible's own ssh command for the host, as the playbook resolved it, so its ControlMaster is shared both ways)
starts one Python on the host, which unpacks this collection's module_utils and ansible's (once per version, into
``~/.cache/synap-play/look/``), answers every look-up side by side (module_utils/look_on_host.py) and prints each
answer as it lands. The secrets in the look-ups' arguments travel on the session's stdin, never on a command line.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shlex
import signal
import subprocess
import tempfile
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from synap_play.project import project_root

# How long one host gets to answer; past it the unanswered look-ups are failures and the playbook's diagnosis stands.
LOOK_TIMEOUT_SECONDS = 60
# Runs on the host (any Python 3.8+): the header line, the payload, then look_on_host.main reads the request.
BOOTSTRAP = """
import io, json, os, shutil, sys, zipfile
stream = sys.stdin.buffer
header = json.loads(stream.readline())
payload = stream.read(header["size"])
home = os.path.join(os.path.expanduser("~"), ".cache", "synap-play", "look")
here = os.path.join(home, header["digest"])
if not os.path.isdir(here):
    os.makedirs(home, mode=0o700, exist_ok=True)
    unpacking = "%s.%d" % (here, os.getpid())
    zipfile.ZipFile(io.BytesIO(payload)).extractall(unpacking)
    try:
        os.rename(unpacking, here)
    except OSError:
        shutil.rmtree(unpacking, ignore_errors=True)
sys.path.insert(0, here)
from ansible_collections.synap.ops.plugins.module_utils.look_on_host import main
main(io.TextIOWrapper(stream, encoding="utf-8"))
"""
# Packages the payload needs an __init__ for (the collection loader makes them namespaces on the controller).
PACKAGES = ("ansible", "ansible_collections", "ansible_collections/synap", "ansible_collections/synap/ops",
            "ansible_collections/synap/ops/plugins", "ansible_collections/synap/ops/plugins/module_utils")
# Parts of ansible.module_utils no look-up imports: fact gathering is most of its size.
LEFT_OUT = ("facts", "csharp", "powershell")

OnAnswer = Callable[[int, dict[str, Any]], None]


@dataclass(frozen=True)
class SshHost:
    """How the playbook reached a host: Ansible's ssh command for it (ending with the host) and its Python."""

    command: tuple[str, ...]
    python: str

    def session(self) -> list[str]:
        # BatchMode: a first look never prompts; a key that needs a passphrase or a new host key is a failure.
        return [*self.command[:-1], "-o", "BatchMode=yes", self.command[-1],
                f"{self.python} -c {shlex.quote(BOOTSTRAP)}"]


def _sources() -> list[tuple[str, Path]]:
    import ansible.module_utils

    ansible_utils = Path(ansible.module_utils.__file__).parent
    files = [(f"ansible/module_utils/{path.relative_to(ansible_utils)}", path)
             for path in sorted(ansible_utils.rglob("*.py"))
             if path.relative_to(ansible_utils).parts[0] not in LEFT_OUT]
    collection_utils = project_root() / "plugins" / "module_utils"
    files += [(f"ansible_collections/synap/ops/plugins/module_utils/{path.name}", path)
              for path in sorted(collection_utils.glob("*.py"))]
    return files


@cache
def payload() -> tuple[str, bytes]:
    """The module_utils the host needs, zipped, and a name for their version; kept in the cache between runs."""
    from synap_play.project import cache_root

    files = _sources()
    identity = hashlib.sha256()
    for name, path in files:
        status = path.stat()
        identity.update(f"{name}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    digest = identity.hexdigest()[:24]
    kept = cache_root() / "look" / f"{digest}.zip"
    try:
        return digest, kept.read_bytes()
    except OSError:
        pass
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for package in PACKAGES:
            if f"{package}/__init__.py" not in {name for name, _path in files}:
                archive.writestr(f"{package}/__init__.py", "")
        for name, path in files:
            archive.write(path, name)
    data = buffer.getvalue()
    try:
        kept.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle, temporary = tempfile.mkstemp(dir=kept.parent, prefix=".look-", suffix=".tmp")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, kept)
    except OSError:
        pass  # an unwritable cache costs this zip again next time, nothing more
    return digest, data


def look_up_over_ssh(host: SshHost, calls: list[tuple[str, dict[str, Any]]], on_answer: OnAnswer,
                     timeout: float = LOOK_TIMEOUT_SECONDS) -> None:
    """Answer ``calls`` (module, args) on ``host``, calling ``on_answer(index, result)`` as each lands; whatever the
    host did not answer (no SSH, no Python, a timeout) is answered as a failure naming why."""
    digest, data = payload()
    request = {"look_ups": [{"key": index, "module": module, "args": args}
                            for index, (module, args) in enumerate(calls)]}
    answered: set[int] = set()
    with tempfile.TemporaryFile() as errors:
        # stderr to a file: ssh's ControlPersist master keeps it open long after this session ends.
        try:
            process = subprocess.Popen(host.session(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
                                       start_new_session=True)
        except OSError as exc:  # no ssh here, or a command that cannot start
            for index in range(len(calls)):
                on_answer(index, {"failed": True, "msg": f"not answered over SSH: cannot start {host.command[0]}: "
                                                         f"{exc.strerror or exc}"})
            return
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):  # its session: a ProxyCommand holds the pipe too
                os.killpg(process.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            try:
                process.stdin.write(json.dumps({"digest": digest, "size": len(data)}).encode() + b"\n" + data
                                    + json.dumps(request, default=str).encode() + b"\n")
                process.stdin.close()
            except OSError:  # the session ended before reading it: its stderr says why
                pass
            for line in process.stdout:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if message.get("done"):
                    break
                key = message.get("key")
                if isinstance(key, int) and 0 <= key < len(calls) and key not in answered:
                    answered.add(key)
                    on_answer(key, message.get("result") or {})
        finally:
            timer.cancel()
            try:
                code = process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
        if len(answered) == len(calls):
            return
        errors.seek(0)
        said = [line for line in errors.read().decode(errors="replace").splitlines() if line.strip()]
        why = (f"no answer within {timeout:g} s" if timed_out.is_set()
               else said[-1].strip() if said else f"ssh exited {code}")
    for index in range(len(calls)):
        if index not in answered:
            on_answer(index, {"failed": True, "msg": f"not answered over SSH: {why}"})
