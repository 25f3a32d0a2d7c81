"""Keep secrets out of everything synap-play writes: passwords, DSN passwords, Inngest keys, webhook URLs."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "********"
# Variable and option names whose values are secrets.
SECRET_NAME = re.compile(r"(pass(word|wd)?|secret|token|signing_key|event_key|api_key|private_key|webhook)", re.I)
# scheme://user:password@host — the password part only, so the host stays readable.
DSN_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]+:)(?P<password>[^\s@'\"]+)(?P<tail>@)", re.I)
# key=value and "key": "value" shapes, for secrets whose value we were never told.
KEY_VALUE = re.compile(
    r"(?P<key>(?:[\w.-]*(?:password|passwd|secret|token|signing_key|event_key|api_key)[\w.-]*))"
    r"(?P<sep>\"?\s*[:=]\s*\"?)(?P<value>[^\s\"',}]+)",
    re.I,
)
ENV_SECRETS = ("DATABASE_URL", "PGPASSWORD", "INNGEST_SIGNING_KEY", "INNGEST_EVENT_KEY")


class Redactor:
    """Learns secret values, then masks them (and anything shaped like a secret) in text and data."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets: set[str] = set()
        for value in secrets:
            self.learn(value)

    def learn(self, value: Any, whole: bool = False) -> None:
        """A secret value; a URL is learned whole only when it is itself the secret (a webhook URL)."""
        if not isinstance(value, str):
            return
        for match in DSN_PASSWORD.finditer(value):
            self._add(match.group("password"))
        if whole or "://" not in value:
            self._add(value)

    def _add(self, value: str) -> None:
        # Very short values would mask ordinary words; nobody's secret is that short.
        if len(value) >= 4 and value != MASK:
            self._secrets.add(value)

    def learn_from_environment(self, environ: Mapping[str, str]) -> None:
        for name in ENV_SECRETS:
            if environ.get(name):
                self.learn(environ[name])

    def learn_from(self, data: Any, secret_context: bool = False) -> None:
        """Learn every value held under a secret-looking name, and every DSN password, in nested data."""
        if isinstance(data, Mapping):
            for key, value in data.items():
                self.learn_from(value, secret_context or bool(SECRET_NAME.search(str(key))))
        elif isinstance(data, list | tuple):
            for item in data:
                self.learn_from(item, secret_context)
        elif isinstance(data, str):
            if secret_context:
                self.learn(data, whole=True)
            else:
                for match in DSN_PASSWORD.finditer(data):
                    self._add(match.group("password"))

    def text(self, text: str) -> str:
        # Longest first, so a secret containing another is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        text = DSN_PASSWORD.sub(lambda m: m.group("head") + MASK + m.group("tail"), text)
        return KEY_VALUE.sub(lambda m: m.group("key") + m.group("sep") + MASK, text)

    def data(self, data: Any, key: str = "") -> Any:
        if isinstance(data, Mapping):
            return {k: self.data(v, str(k)) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return [self.data(item, key) for item in data]
        if isinstance(data, str):
            if key and SECRET_NAME.search(key) and data:
                return MASK
            return self.text(data)
        return data
