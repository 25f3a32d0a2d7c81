"""The lab's monitoring stack: Prometheus, Alertmanager and the two exporters (lab/compose.yaml), configured from
monitoring/. Alertmanager's configuration is written here, from monitoring/lab/alertmanager.yml and the lab
inventory's webhook receiver, with a Bearer token generated once per lab."""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import quote

import yaml

from synap_play.lab import LabError, access

SERVICES = ("postgres-exporter", "blackbox-exporter", "alertmanager", "prometheus")
PROMETHEUS_URL = "http://127.0.0.1:9090"
ALERTMANAGER_URL = "http://127.0.0.1:9093"
WEBHOOK_URL_VAR = "synap_alertmanager_webhook_url"
TOKEN_FILE = "webhook-token"


def webhook_url(root: Path) -> str:
    path = root / "inventory" / "lab" / "group_vars" / "all.yml"
    url = (yaml.safe_load(path.read_text()) or {}).get(WEBHOOK_URL_VAR)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or "{{" in url:
        raise LabError(f"{path}: {WEBHOOK_URL_VAR} must be a plain http(s) URL, the receiver "
                                    "Alertmanager posts to")
    return url


def write_alertmanager_config(root: Path, state_dir: Path) -> Path:
    """lab/state/alertmanager/: the configuration Alertmanager mounts, and the token it sends (kept across runs)."""
    folder = state_dir / "alertmanager"
    folder.mkdir(parents=True, exist_ok=True)
    token = folder / TOKEN_FILE
    if not token.is_file():
        token.write_text(secrets.token_urlsafe(32))
    # Alertmanager runs as the image's prometheus user: the bind-mounted files must be readable by it.
    token.chmod(0o644)
    config = yaml.safe_load((root / "monitoring" / "lab" / "alertmanager.yml").read_text())
    webhooks = [hook for receiver in config.get("receivers", []) for hook in receiver.get("webhook_configs", [])]
    if len(webhooks) != 1:
        raise LabError("monitoring/lab/alertmanager.yml must have exactly one webhook receiver")
    webhooks[0]["url"] = webhook_url(root)
    path = folder / "alertmanager.yml"
    path.write_text("# Written by `synap-play lab up` from monitoring/lab/alertmanager.yml: edit that file.\n"
                    + yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o644)
    return path


def webhook_token(state_dir: Path) -> str:
    return (state_dir / "alertmanager" / TOKEN_FILE).read_text().strip()


def _data(url: str):
    status, answer = access.http("GET", url, timeout=3)
    if status != 200 or not isinstance(answer, (dict, list)):
        raise LabError(f"{url}: HTTP {status}")
    return answer


def targets_down() -> list[str]:
    """Scrape targets Prometheus does not have up (yet): job and instance of each."""
    answer = _data(f"{PROMETHEUS_URL}/api/v1/targets?state=active")
    targets = answer.get("data", {}).get("activeTargets", [])
    if not targets:
        return ["(no targets yet)"]
    return [f"{t['labels'].get('job')} {t['labels'].get('instance')}" for t in targets if t.get("health") != "up"]


def alerts(name: str | None = None) -> list[dict]:
    """Alerts Alertmanager holds as active now (a resolved alert is no longer listed), optionally one alertname."""
    url = f"{ALERTMANAGER_URL}/api/v2/alerts?active=true&silenced=false&inhibited=false"
    if name:
        url += "&filter=" + quote(f'alertname="{name}"')
    return list(_data(url))


def firing() -> list[str]:
    return sorted({alert["labels"]["alertname"] for alert in alerts()})
