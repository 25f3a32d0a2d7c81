"""Which backend the lab's api and jobs services run: our stand-ins (lab/services/api, lab/services/jobs), or
Synap's real backend built from its source (lab/backend/). The choice is written to lab/.env, which docker compose
reads for every command run in lab/ (synap-play's own modules included), so that a service recreated by a
mitigation is the same backend as before."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from synap_play.lab import LabError

STANDIN = "standin"
REAL = "real"
# SYNAP_LAB_BACKEND: standin | real; unset: the real one when its source is found, else the stand-ins.
CHOICE_ENV = "SYNAP_LAB_BACKEND"
# "1": the lab's middleware records the HTTP metrics the real backend declares but never records
# (lab/backend/patches/030-http-metrics-middleware.patch, in every build, dormant unless asked for).
METRICS_ENV = "SYNAP_LAB_BACKEND_METRICS"
SOURCE_ENVS = ("SYNAP_LAB_BACKEND_DIR", "SYNAP_LAB_BACKEND_ARCHIVE")
IMAGE_REPOSITORY = "synap-lab-backend"
ENV_FILE = ".env"
# lab/.env's names, apart from the variables a user sets for `lab up`: a shell that exports SYNAP_LAB_BACKEND must
# not turn a service a mitigation recreates into the other backend (compose prefers the shell to .env).
KIND_KEY, IMAGE_KEY, SOURCE_KEY, METRICS_KEY, WHY_KEY = (
    "LAB_BACKEND", "LAB_BACKEND_IMAGE", "LAB_BACKEND_SOURCE", "LAB_BACKEND_METRICS", "LAB_BACKEND_WHY")


@dataclass(frozen=True)
class Backend:
    kind: str  # STANDIN or REAL
    source: Path | None = None  # the archive or checkout the real one is built from
    metrics: bool = False  # the real one records its HTTP metrics (the lab's middleware)
    why: str = ""  # why this one, when it was not asked for by name

    def describe(self) -> str:
        if self.kind == STANDIN:
            return f"stand-in (lab/services/api, lab/services/jobs){f': {self.why}' if self.why else ''}"
        metrics = "HTTP metrics recorded by the lab's middleware" if self.metrics else \
            "HTTP metrics declared, not recorded (as Synap ships it)"
        return f"Synap's real backend from {self.source.name if self.source else '?'}; {metrics}"


def find_source(root: Path) -> Path | None:
    """The real backend's source: SYNAP_LAB_BACKEND_DIR, SYNAP_LAB_BACKEND_ARCHIVE, else an archive beside the
    project (../shared/systems/synap-backend-*.tar.gz), or beside the checkout it was cloned from (a CI clone)."""
    for name in SOURCE_ENVS:
        if os.environ.get(name):
            path = Path(os.environ[name]).expanduser()
            if not path.exists():
                raise LabError(f"{name}={path} does not exist")
            return path
    for project in (root, _cloned_from(root)):
        if project is not None:
            found = sorted((project.parent / "shared" / "systems").glob("synap-backend-*.tar.gz"))
            if found:
                return found[0]
    return None


def _cloned_from(root: Path) -> Path | None:
    """The local checkout ROOT was cloned from (its origin, when that is a folder here), else None."""
    try:
        proc = subprocess.run(["git", "-C", str(root), "remote", "get-url", "origin"], capture_output=True, text=True)
    except OSError:  # no git: no origin to look beside
        return None
    origin = Path(proc.stdout.strip().removeprefix("file://")) if proc.returncode == 0 and proc.stdout.strip() else None
    return origin if origin is not None and origin.is_absolute() and origin.is_dir() else None


def chosen(root: Path) -> Backend:
    """The backend `lab up` starts, from the environment and what source is present."""
    asked = os.environ.get(CHOICE_ENV, "").strip().lower()
    metrics = os.environ.get(METRICS_ENV, "") not in ("", "0", "false", "no")
    if asked not in ("", STANDIN, REAL):
        raise LabError(f"{CHOICE_ENV}={asked!r}: use {REAL} or {STANDIN}")
    if asked == STANDIN:
        return Backend(STANDIN)
    source = find_source(root)
    if source is None:
        if asked == REAL:
            raise LabError(f"{CHOICE_ENV}=real but no source: set SYNAP_LAB_BACKEND_DIR to a checkout or "
                           "SYNAP_LAB_BACKEND_ARCHIVE to a synap-backend-*.tar.gz")
        return Backend(STANDIN, why="no synap-backend source found (SYNAP_LAB_BACKEND_DIR, SYNAP_LAB_BACKEND_ARCHIVE)")
    missing = _build_tools_missing()
    if missing:
        if asked == REAL:
            raise LabError(f"{CHOICE_ENV}=real but {missing}")
        return Backend(STANDIN, why=f"Synap's backend source is here but {missing}")
    return Backend(REAL, source, metrics)


def _build_tools_missing() -> str:
    """What building and running the real backend needs and this machine lacks ("" when nothing)."""
    for tool in ("npm", "patch"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (lab/backend/build needs Node 20 with npm, and patch)"
    try:
        version = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except OSError:
        version = ""
    if not version.startswith("v") or not version[1:].split(".")[0].isdigit() or int(version[1:].split(".")[0]) < 20:
        return f"Node 20 or newer is missing (node --version: {version or 'none'})"
    return ""


def running(lab_dir: Path) -> Backend | None:
    """The backend lab/.env names (the one the lab was brought up with), or None when there is no lab/.env."""
    values = read_env(lab_dir / ENV_FILE)
    if values is None:
        return None
    if values.get(KIND_KEY) != REAL:
        return Backend(STANDIN, why=values.get(WHY_KEY, ""))
    source = values.get(SOURCE_KEY)
    return Backend(REAL, Path(source) if source else None, values.get(METRICS_KEY) == "1")


def read_env(path: Path) -> dict[str, str] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise LabError(f"{path}: {error.strerror}") from error
    values = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.lstrip().startswith("#"):
            values[name.strip()] = value.strip()
    return values


def write_env(lab_dir: Path, backend: Backend, image: str | None) -> None:
    lines = ["# Written by `synap-play lab up`: the backend the lab runs (lab/README.md); removed by `lab down`.",
             f"{KIND_KEY}={backend.kind}"]
    if backend.kind == REAL:
        lines += [f"{IMAGE_KEY}={image}", f"{SOURCE_KEY}={backend.source}", f"{METRICS_KEY}={int(backend.metrics)}"]
    elif backend.why:
        lines.append(f"{WHY_KEY}={backend.why}")
    (lab_dir / ENV_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")


def remove_env(lab_dir: Path) -> None:
    (lab_dir / ENV_FILE).unlink(missing_ok=True)


def build_tree(lab_dir: Path, backend: Backend, progress: Callable[[str], None]) -> Path:
    """lab/backend/build: the backend's built tree (cached by its source and the recipe's hash)."""
    command = [str(lab_dir / "backend" / "build"), str(backend.source)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tail = []
    for line in proc.stderr:
        progress(line.rstrip())
        tail = [*tail[-4:], line.strip()]
    lines = proc.stdout.read().split()
    if proc.wait() != 0 or not lines:
        raise LabError(f"building Synap's backend failed ({tail[-1] if tail else 'no output'}); "
                       f"run {command[0]} to see why, or set {CHOICE_ENV}=standin")
    return Path(lines[-1])


def image(lab_dir: Path, backend: Backend, base_image: str, progress: Callable[[str], None]) -> str:
    """The image the real backend runs in: the lab's base image with Node and the built tree at /srv/app. Named by
    the tree's hash and the base image's tag, so an unchanged source and recipe reuse it."""
    tree = build_tree(lab_dir, backend, progress)
    name = f"{IMAGE_REPOSITORY}:{tree.name}-{base_image.rpartition(':')[2]}"
    if subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0:
        return name
    node = _node_binary()
    progress(f"backend image: {name} (the base image, Node {_node_version(node)} and {tree})")
    container = _docker("create", base_image, "true").strip()
    try:
        _docker("cp", f"{tree}/.", f"{container}:/srv/app")
        _docker("cp", node, f"{container}:/usr/local/bin/node")
        _docker("commit", "--change", "WORKDIR /srv/app", container, name)
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
    return name


def _node_binary() -> str:
    # Node's own build links nothing but the C and C++ runtimes, which the base image has; a distribution's
    # node linked to a shared libnode would not start there.
    for candidate in (os.environ.get("SYNAP_LAB_NODE"), "/usr/local/bin/node", "/usr/bin/node"):
        if candidate and Path(candidate).is_file():
            libraries = subprocess.run(["ldd", candidate], capture_output=True, text=True).stdout
            if "libnode" not in libraries:
                return os.path.realpath(candidate)
    raise LabError("no self-contained Node 20 binary for the backend image (one not linked to libnode); "
                   "set SYNAP_LAB_NODE to one")


def _node_version(node: str) -> str:
    return subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()


def _docker(*args: str) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"docker {args[0]} failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    return proc.stdout


def init_release(deploy_dir: Path, backend_image: str, git: Callable[..., str]) -> None:
    """The deploy checkout of the real backend: its release (dist/ and package.json) as the image has it, one
    commit; node_modules is the image's, linked and ignored, as dependencies beside a deployed release are."""
    container = _docker("create", backend_image, "true").strip()
    try:
        for part in ("dist", "package.json"):
            _docker("cp", f"{container}:/srv/app/{part}", str(deploy_dir / part))
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
    (deploy_dir / ".gitignore").write_text("node_modules\n", encoding="utf-8")
    link = deploy_dir / "node_modules"
    if not link.is_symlink():
        link.symlink_to("/srv/app/node_modules")
    git("add", "-A")
    git("commit", "-q", "-m", f"release {backend_image.partition(':')[2][:7]}: Synap's backend as built for the lab")
