# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cron triggers: the schedule parser Inngest validates with, and the thread that starts cron runs on time.

Inngest accepts exactly five fields (minute, hour, day of month, month, day of week) with an optional ``TZ=Zone``
or ``CRON_TZ=Zone`` prefix: no seconds field and no ``@every``/``@daily`` descriptors, so a registration with
``*/10 * * * * *`` is refused, as the real server refuses it. A field is ``*`` or ``?``, a number, a range
``a-b``, a step ``*/n``, ``a-b/n`` or ``a/n`` (from a to the field's end), or a comma list of those; months and
days of the week also by their three-letter English names. When both day fields are restricted a day matches
either of them (the classic cron rule), otherwise it must match both.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
DAYS = {name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# (low, high, names) per field, in the order they are written.
FIELDS = ((0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, MONTHS), (0, 6, DAYS))
# A missed minute is made up for at most this far back (a suspended host must not start a storm of runs).
CATCH_UP = timedelta(minutes=5)


class Cron:
    """One parsed schedule: the allowed values of each field, and the zone its times are read in."""

    def __init__(self, expression: str):
        self.expression = expression
        text = expression.strip()
        self.zone = UTC
        if text.startswith(("TZ=", "CRON_TZ=")):
            prefix, _space, text = text.partition(" ")
            self.zone = _zone(prefix.split("=", 1)[1], expression)
        fields = text.split()
        if len(fields) != len(FIELDS):
            raise invalid(expression)
        parsed = [_field(value, *spec, expression) for value, spec in zip(fields, FIELDS, strict=True)]
        self.minutes, self.hours, self.days, self.months, self.weekdays = (values for values, _star in parsed)
        self.any_day, self.any_weekday = parsed[2][1], parsed[4][1]

    def matches(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone)
        if local.minute not in self.minutes or local.hour not in self.hours or local.month not in self.months:
            return False
        day, weekday = local.day in self.days, (local.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return day and weekday
        return day or weekday


def invalid(expression: str) -> ValueError:
    # The real server's words, so a refused registration reads the same.
    return ValueError(f"'{expression}' isn't a valid cron schedule")


def _zone(name: str, expression: str):
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # A zone the server knows is valid; without the system's zone data it cannot be told from a typo, so such
        # a schedule is read in UTC rather than refused (the real server ships its zone data).
        if "/" in name or name.upper() in ("UTC", "GMT"):
            return UTC
        raise invalid(expression) from None


def _field(text: str, low: int, high: int, names: dict, expression: str) -> tuple[set[int], bool]:
    """The values one field allows, and whether it was a bare ``*``/``?`` (the day-matching rule needs it)."""
    values: set[int] = set()
    star = False
    for part in text.split(","):
        span, _slash, step_text = part.partition("/")
        step = _number(step_text, {}, expression) if step_text else 1
        if span in ("*", "?"):
            start, end = low, high
            star = star or step == 1
        elif "-" in span:
            first, last = span.split("-", 1)
            start, end = _number(first, names, expression), _number(last, names, expression)
        else:
            start = _number(span, names, expression)
            end = high if step_text else start  # "a/n" runs from a to the end of the field
        if not low <= start <= end <= high or step < 1:
            raise invalid(expression)
        values.update(range(start, end + 1, step))
    return values, star


def _number(text: str, names: dict, expression: str) -> int:
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise invalid(expression)
    return int(text)


class Scheduler:
    """Starts a run of every function whose cron matches a minute that has just begun.

    ``clock`` returns the current time (aware); the tests pass their own. ``check()`` does one pass and is what
    the thread calls every ``tick`` seconds.
    """

    def __init__(self, store, clock=lambda: datetime.now(UTC), tick: float = 1.0):
        self.store = store
        self.clock = clock
        self.tick = tick
        self.last: datetime | None = None  # the last minute already handled
        self.stopped = threading.Event()

    def check(self) -> int:
        """Start the runs due since the last pass; returns how many were started."""
        minute = self.clock().astimezone(UTC).replace(second=0, microsecond=0)
        if self.last is None:
            # Like cron, the first run is at the next minute that matches, never for the minute already under way.
            self.last = minute
            return 0
        due = []
        moment = max(self.last, minute - CATCH_UP) + timedelta(minutes=1)
        while moment <= minute:
            due.append(moment)
            moment += timedelta(minutes=1)
        self.last = max(self.last, minute)
        started = 0
        for app, fn in self.store.cron_functions():
            for cron in fn["crons"]:
                if any(cron.matches(moment) for moment in due):
                    # One run per function and pass even when several minutes were missed.
                    self.store.start_scheduled(app, fn, cron.expression)
                    started += 1
                    break
        return started

    def run_forever(self) -> None:
        while not self.stopped.wait(self.tick):
            self.check()

    def start(self) -> threading.Thread:
        self.check()
        thread = threading.Thread(target=self.run_forever, name="cron", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stopped.set()
