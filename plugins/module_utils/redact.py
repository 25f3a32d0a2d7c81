# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep secrets out of everything synap.ops and synap-play show or write: passwords, DSN passwords, Inngest keys,
webhook URLs, PagerDuty routing keys. The one implementation of masking: the modules' messages (redact_dsn,
redact_url) and synap-play's record and display (Redactor) use the same patterns.

Every pattern here runs in time linear in its input: each either starts at a fixed word or scheme, or is
anchored at the start of a run of characters and repeats a bounded number of times, so a long unbroken run
(a 30 KB metrics page on one line, a pasted log in an alert summary) is scanned once, never once per position.
The repetitions that meet a long run have alternatives no character matches two of, so giving back what they
took (when what follows does not match) costs at most the run once more.

Modules import this on their target, so it keeps to what every Python ansible-core runs modules with.
"""


from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "********"
# A single value longer than this is cut before it is scanned: the record stays readable, and no pattern
# meets an input larger than this however much a target or an alert sends. Far above any real secret or message.
MAX_VALUE = 64 * 1024
# The mark starts with a space, so it never lengthens the run it ends.
CUT_MARK = " [...{} more characters cut]"
# How far either side of a cut to look for a secret the cut would split, so no part of one is kept.
CUT_WINDOW = 1024
# The memo of masked text keeps texts of up to 1 KiB, at most 32 768 of them (some 64 MiB at worst; in practice a
# record's own few thousand strings); a longer text is masked afresh each time.
MEMO_TEXT_AT_MOST = 1024
MEMO_ENTRIES_AT_MOST = 32768
# Variable and option names whose values are secrets.
SECRET_NAME = re.compile(r"(pass(word|wd)?|secret|token|signing_key|event_key|api_key|private_key|webhook"
                         r"|routing_key|integration_key)", re.I)
_SECRET_WORDS = ("password", "passwd", "secret", "token", "signing_key", "event_key", "api_key", "routing_key",
                 "integration_key")
_SECRET_WORD = "(?:" + "|".join(_SECRET_WORDS) + ")"
# scheme://user:password@host — the password part only, so the host stays readable. The scheme is bounded; the
# password runs to the last "@" before a "/", as urlsplit reads a URL, so a password holding "@" is masked whole.
DSN_PASSWORD = re.compile(
    r"(?P<head>\b[a-z][a-z0-9+.-]{0,31}://[^\s:/@'\"]*:)(?P<password>[^\s'\"/]+)(?P<tail>@)", re.I)
# libpq's keyword form (password=x, password='with space') and a URL's query parameter (?password=x&...): the
# value only, so the rest of the DSN stays readable in a message.
DSN_KEYWORD_PASSWORD = re.compile(r"(?P<head>(?:^|\s)password\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'|\S+)", re.I)
DSN_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)(?P<value>[^&\s]*)", re.I)
# A quote, or one escaped once or more: JSON inside a JSON string, as a module's output is inside an event of the
# artifacts.
_QUOTE = r"\\{0,7}[\"']"
# key=value, key: value and "key": "value" shapes, for secrets whose value we were never told. The match starts at
# the secret word (what precedes it in the name stays as it is) and the rest of the name is bounded, so a long run
# is never rescanned from each of its positions. A quoted value is masked to its closing quote (a libpq
# password='with space', a JSON string, an escaped one inside another); an unquoted one to the next separator,
# never into the backslashes of an escaped quote, so the JSON it sits in stays JSON. Empty values stay as they are.
KEY_VALUE = re.compile(
    r"(?P<key>" + _SECRET_WORD + r"[\w.-]{0,64})"
    r"(?P<sep>(?:" + _QUOTE + r")?\s{0,16}[:=]\s{0,16})"
    r"(?P<value>(?P<q1>\\{1,7}\")[^\"\n]+?(?P<c1>(?P=q1))|(?P<q2>\")(?:[^\"\\\n]|\\.)+(?P<c2>\")"
    r"|(?P<q3>')(?:[^'\\\n]|\\.)+(?P<c3>')|(?P<q4>" + _QUOTE + r")?(?:[^\s\"',}\\]|\\[^\"'\\])+)",
    re.I,
)
# Authorization: Bearer xyz (a header, or a headers mapping shown as JSON): the credential, not the scheme.
AUTHORIZATION = re.compile(
    r"(?P<head>\bauthorization(?:" + _QUOTE + r")?\s{0,16}[:=]\s{0,16}(?:" + _QUOTE + r")?"
    r"(?:(?:bearer|basic|token|digest)\s{1,16})?)(?P<value>[^\s\"',}\\]+)",
    re.I,
)
# A bearer token on its own (curl -H, a client's debug line); the spelling of RFC 6750 and a token-sized value,
# so "the bearer of" is left alone.
BEARER = re.compile(r"(?P<head>\bBearer\s{1,16})(?P<value>[\w~+/.=-]{8,})")
# Inngest signing keys carry their own prefix, so they are recognised even when no variable taught them.
INNGEST_KEY = re.compile(r"\bsignkey-[\w-]+")
# Incoming-webhook URLs of the Slack-compatible services the notify role posts to: the path's token part is the
# credential (Slack: the last of /services/T/B/token; Discord: /api/webhooks/id/token; Mattermost and
# Rocket.Chat: everything after /hooks/), the host and the fixed path stay readable.
WEBHOOK = re.compile(
    r"(?P<head>\bhttps?://(?:hooks\.slack\.com/services/[\w-]+/[\w-]+/"
    r"|(?:discord|discordapp)\.com/api/webhooks/\d+/"
    r"|[^\s/'\"]+/hooks/))"
    r"(?P<value>[\w-]+(?:/[\w-]+)?)",
    re.I,
)
_PATTERNS = (DSN_PASSWORD, KEY_VALUE, AUTHORIZATION, BEARER, INNGEST_KEY, WEBHOOK)
# A run of characters no whitespace or quote breaks: one value, as far as a text can tell. Anchored at the
# run's start so a long run is measured once.
_LONG_RUN = re.compile(rf"(?<![^\s\"'])[^\s\"']{{{MAX_VALUE + 1},}}")
ENV_SECRETS = ("DATABASE_URL", "PGPASSWORD", "INNGEST_SIGNING_KEY", "INNGEST_EVENT_KEY")


def _mask_value(match: re.Match) -> str:
    # A quoted value keeps its quotes, escaped as they were, so JSON and a libpq DSN stay well-formed.
    opening = match["q1"] or match["q2"] or match["q3"] or match["q4"] or ""
    closing = match["c1"] or match["c2"] or match["c3"] or ""
    return f"{match['key']}{match['sep']}{opening}{MASK}{closing}"


def _mask_after_head(match: re.Match) -> str:
    return match["head"] + MASK


def _mask_url_password(match: re.Match) -> str:
    return match["head"] + MASK + match["tail"]


def url_passwords(text):
    """The password of every ``scheme://user:password@host`` in ``text``."""
    return [match.group("password") for match in DSN_PASSWORD.finditer(text or "")]


def redact_url(url):
    """``url`` (or any text) with the password of every URL in it masked; the rest stays readable."""
    if not url or "://" not in url:
        return url
    return DSN_PASSWORD.sub(_mask_url_password, url)


def redact_dsn(dsn):
    """``dsn`` with its password masked, in any of libpq's forms: the URL's user part, a ``password=`` keyword
    (quoted or not) and a ``?password=`` query parameter. The rest stays readable in a message."""
    if not dsn:
        return dsn
    masked = DSN_KEYWORD_PASSWORD.sub(_mask_after_head, redact_url(dsn))
    return DSN_QUERY_PASSWORD.sub(_mask_after_head, masked)


# Types that are none of a string, a mapping or a list.
_PLAIN = frozenset((int, float, bool, type(None)))


@functools.lru_cache(maxsize=4096)
def _is_secret_name(key: str) -> bool:
    """Whether a value held under KEY is a secret (the same few hundred keys, over and over in a record)."""
    return bool(SECRET_NAME.search(key))


class Redactor:
    """Learns secret values, then masks them (and anything shaped like a secret) in text and data."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets: set[str] = set()
        self._ordered: list[str] = []
        # Masked text by its original, for the secrets learned so far: a record is masked whole at every save, and
        # a fleet's record repeats the same strings for each host. A new secret starts a new memo.
        self._masked: dict[str, str] = {}
        for value in secrets:
            self.learn(value)

    def learn(self, value: Any, whole: bool = False) -> None:
        """A secret value; a URL is learned whole only when it is itself the secret (a webhook URL)."""
        if not isinstance(value, str):
            return
        for password in url_passwords(value):
            self._add(password)
        if whole or "://" not in value:
            self._add(value)

    def _add(self, value: str) -> None:
        # Very short values would mask ordinary words; nobody's secret is that short. One made only of the mask's
        # own character would match inside every mask already written, and grow the text with each pass.
        if len(value) >= 4 and value.strip(MASK[0]) and value not in self._secrets:
            self._secrets.add(value)
            # Longest first, so a secret containing another is masked whole.
            self._ordered = sorted(self._secrets, key=len, reverse=True)
            self._masked = {}

    def learn_from_environment(self, environ: Mapping[str, str]) -> None:
        for name in ENV_SECRETS:
            if environ.get(name):
                self.learn(environ[name])

    def learn_from(self, data: Any, secret_context: bool = False) -> None:
        """Learn every value held under a secret-looking name, and every DSN password, in nested data."""
        if isinstance(data, Mapping):
            for key, value in data.items():
                self.learn_from(value, secret_context or _is_secret_name(str(key)))
        elif isinstance(data, (list, tuple)):
            for item in data:
                self.learn_from(item, secret_context)
        elif isinstance(data, str):
            if secret_context:
                self.learn(data, whole=True)
            else:
                for password in url_passwords(data):
                    self._add(password)

    def text(self, text: str) -> str:
        """``text`` with every learned secret, and everything shaped like one, masked; a run of more than MAX_VALUE
        characters is cut first."""
        # The memo of the secrets this masking starts with: one learned meanwhile (another thread) starts a new
        # memo, so a text masked without it is never kept for later.
        memo = self._masked
        masked = memo.get(text)
        if masked is None:
            masked = self._mask(text)
            if len(text) <= MEMO_TEXT_AT_MOST:
                if len(memo) >= MEMO_ENTRIES_AT_MOST:
                    memo.clear()
                memo[text] = masked
        return masked

    def _mask(self, text: str) -> str:
        if len(text) > MAX_VALUE:
            text = _LONG_RUN.sub(lambda m: self._cut(m.group()), text)
        # Each learned secret is one pass of str.replace, linear in the text. A secret has a character no mask has
        # (see _add), so each pass masks only what was there before and the text grows at most by the masks.
        for secret in self._ordered:
            if secret in text:
                text = text.replace(secret, MASK)
        # Each pattern runs only when the text holds the word it starts from: most text holds none of them.
        lowered = text.lower()
        if "://" in text:
            text = DSN_PASSWORD.sub(_mask_url_password, text)
            text = WEBHOOK.sub(_mask_after_head, text)
        if any(word in lowered for word in _SECRET_WORDS):
            text = KEY_VALUE.sub(_mask_value, text)
        if "authorization" in lowered:
            text = AUTHORIZATION.sub(_mask_after_head, text)
        if "Bearer" in text:
            text = BEARER.sub(_mask_after_head, text)
        return INNGEST_KEY.sub(MASK, text) if "signkey-" in text else text

    def _cut(self, value: str) -> str:
        """``value`` cut to MAX_VALUE characters, with a mark saying how much went; a secret the cut would split
        goes whole, so no part of it is kept."""
        cut = MAX_VALUE
        # Overlapping secrets are rare: a few rounds settle any real case and keep the work bounded.
        for _attempt in range(4):
            if (earlier := self._split_at(value, cut)) == cut:
                break
            cut = earlier
        # An odd number of backslashes ending the value escapes the quote that follows it, so one stays after the
        # mark; and a cut never ends on half a JSON escape (a backslash, a \\u00): the cut copy of a JSON file
        # stays JSON.
        body = value.rstrip("\\")
        ending = "\\" * ((len(value) - len(body)) % 2)
        kept = re.sub(r"\\u[0-9a-fA-F]{0,3}$", "", body[:cut])
        if (len(kept) - len(kept.rstrip("\\"))) % 2:
            kept = kept[:-1]
        return kept + CUT_MARK.format(len(value) - len(kept) - len(ending)) + ending

    def _split_at(self, value: str, cut: int) -> int:
        """The start of the earliest secret, learned or shaped like one, that spans ``cut``; else ``cut``."""
        low = max(0, cut - CUT_WINDOW)
        window, middle = value[low:cut + CUT_WINDOW], cut - low
        starts = [middle]
        for secret in self._ordered:
            at = window.find(secret, max(0, middle - len(secret) + 1))
            if at != -1 and at < middle:
                starts.append(at)
        for pattern in _PATTERNS:
            for match in pattern.finditer(window):
                if match.start() >= middle:
                    break
                if match.end() > middle:
                    starts.append(match.start())
        return low + min(starts)

    def data(self, data: Any, key: str = "") -> Any:
        # The plain types first, by their exact type: a record is tens of thousands of them, and asking each
        # whether it is a Mapping goes through the ABC machinery.
        kind = type(data)
        if kind is str or (kind not in _PLAIN and isinstance(data, str)):
            if key and data and _is_secret_name(key):
                return MASK
            return self.text(self._cut(data) if len(data) > MAX_VALUE else data)
        if kind is dict or (kind not in _PLAIN and isinstance(data, Mapping)):
            return {k: self.data(v, str(k)) for k, v in data.items()}
        if kind is list or kind is tuple or (kind not in _PLAIN and isinstance(data, (list, tuple))):
            return [self.data(item, key) for item in data]
        return data
