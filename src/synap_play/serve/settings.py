"""What `synap-play serve` was started with: checked by the command, read by every part of the service."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synap_play.serve.incidents import Key


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    token: str | None
    inventory: str  # as given to -i: the runs are given it as it is, and their records name it so
    incidents_dir: Path  # absolute: the runs' working folder need not be serve's
    catalog: Path | None
    alert_map: Path | None
    limit: str | None
    extra_vars: tuple[str, ...]
    operator: str
    max_parallel: int
    queue_size: int
    stop_timeout: float
    verbose: int = 0

    def key(self, scenario: str) -> Key:
        """At most one run per scenario and target: the target is this inventory (and --limit)."""
        return scenario, self.inventory, self.limit

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"
