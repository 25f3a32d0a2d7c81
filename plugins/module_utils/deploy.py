# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy checkout: git run with argument lists, its recent commits, and the rollback commits we write."""

from __future__ import annotations

import re

ROLLBACK_AUTHOR = "synap-play"
ROLLBACK_TRAILER = "Rolled-back-by: synap-play"
_REVERTS = re.compile(r"^This reverts commit ([0-9a-f]{7,64})\b", re.MULTILINE)
_INCIDENT = re.compile(r"^Incident: (.+)$", re.MULTILINE)
# Unit and record separators cannot occur in commit subjects or names.
_FIELDS = ("sha", "short", "committed_epoch", "author", "author_email", "parents", "subject")
_LOG_FORMAT = "%x1f".join(("%H", "%h", "%ct", "%an", "%ae", "%P", "%s")) + "%x1e"


class GitError(Exception):
    pass


class Git:
    """git in one checkout; ``run_command`` is AnsibleModule.run_command or a stand-in with its convention."""

    def __init__(self, run_command, repo, git="git"):
        self.run_command = run_command
        self.repo = repo
        self.git = git
        self.commands = []

    def run(self, args, env=None, record=False):
        command = [self.git, "-C", self.repo] + list(args)
        if record:
            self.commands.append(" ".join(command))
        environ = {"LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_EDITOR": "true"}
        environ.update(env or {})
        try:
            rc, out, err = self.run_command(command, environ_update=environ)
        except OSError as exc:
            raise GitError(f"cannot run git: {exc}") from None
        if rc != 0:
            lines = (err or out).strip().splitlines()
            raise GitError(f"git {args[0]} failed in {self.repo}: {lines[-1] if lines else f'rc={rc}'}")
        return out

    def is_repo(self):
        try:
            return self.run(["rev-parse", "--is-inside-work-tree"]).strip() == "true"
        except GitError:
            return False

    def has_commits(self):
        """Whether HEAD names a commit (a fresh checkout has none); a git that cannot run raises GitError."""
        try:
            self.run(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"])
        except GitError as exc:
            if str(exc).startswith("cannot run git"):
                raise
            return False
        return True

    def log(self, count):
        out = self.run(["log", f"--max-count={count}", f"--format={_LOG_FORMAT}"])
        commits = []
        for record in out.split("\x1e"):
            record = record.strip("\n")
            if not record:
                continue
            values = record.split("\x1f")
            commit = {field: values[index] for index, field in enumerate(_FIELDS)}
            commit["committed_epoch"] = int(commit["committed_epoch"])
            commit["parents"] = commit["parents"].split()
            commits.append(commit)
        return commits

    def message(self, rev="HEAD"):
        return self.run(["log", "-1", "--format=%B", rev])

    def branch(self):
        name = self.run(["rev-parse", "--abbrev-ref", "HEAD"]).strip()
        return None if name == "HEAD" else name

    def dirty(self):
        """Tracked files with uncommitted changes (untracked files do not block a revert)."""
        out = self.run(["status", "--porcelain", "--untracked-files=no"])
        return [line[3:] for line in out.splitlines() if line.strip()]


def own_revert(message):
    """For a commit message we wrote as a rollback: {'reverts': sha, 'incident_id': id}; otherwise None."""
    if ROLLBACK_TRAILER not in message.splitlines():
        return None
    reverts = _REVERTS.search(message)
    incident = _INCIDENT.search(message)
    return {"reverts": reverts.group(1) if reverts else None, "incident_id": incident.group(1) if incident else None}


def rollback_message(commit, incident_id):
    return (
        f'Revert "{commit["subject"]}"\n\n'
        f"This reverts commit {commit['sha']}.\n\n"
        f"Incident: {incident_id}\n"
        f"{ROLLBACK_TRAILER}\n"
    )
