"""Standard 5-field cron expressions (minute hour day-of-month month day-of-week), as Velero's
schedules take them (robfig/cron's standard parser): numbers, ``*``, ranges ``a-b``, steps
``*/n`` and ``a-b/n``, lists ``a,b``, month and weekday names, 7 as Sunday, the ``@hourly``
family, and ``@every <duration>``. Day-of-month and day-of-week combine with OR when both are
restricted, as in every cron. Times are UTC, as Velero's server schedules them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mover.golang.duration import parse_duration

_MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
_DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
_MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
# (name, lowest, highest, names) per field
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS), ("day of week", 0, 7, _DAYS),
)


class CronError(ValueError):
    pass


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_star: bool  # day-of-month was unrestricted: only day-of-week counts
    weekday_star: bool
    every: timedelta | None = None  # @every <duration>

    def next_after(self, t: datetime) -> datetime:
        """The first activation strictly after ``t`` (an aware datetime), in UTC."""
        t = t.astimezone(UTC)
        if self.every is not None:
            return t + self.every
        t = t.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = t + timedelta(days=366 * 5)  # e.g. "0 0 30 2 *" never fires
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += timedelta(minutes=1)
            else:
                return t
        raise CronError("the schedule never fires")

    def _day_matches(self, t: datetime) -> bool:
        in_month = t.day in self.days
        in_week = (t.isoweekday() % 7) in self.weekdays
        if self.day_star or self.weekday_star:
            return in_month and in_week
        return in_month or in_week


def parse(expression: str) -> Cron:
    text = expression.strip()
    if text.startswith("@every"):
        try:
            every = timedelta(microseconds=parse_duration(text[len("@every"):].strip()) // 1000)
        except ValueError as exc:
            raise CronError(str(exc)) from None
        if every <= timedelta(0):
            raise CronError(f"@every needs a positive duration: {expression!r}")
        return Cron(frozenset(), frozenset(), frozenset(), frozenset(), frozenset(), True, True, every)
    text = _MACROS.get(text.lower(), text)
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(parts)}: {expression!r}")
    sets = [_field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])
    return Cron(sets[0], sets[1], sets[2], sets[3], weekdays,
                day_star=parts[2] in ("*", "?"), weekday_star=parts[4] in ("*", "?"))


def _field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        match = re.fullmatch(r"(\*|\?|[\w]+(?:-[\w]+)?)(?:/(\d+))?", item)
        if not match:
            raise CronError(f"bad {name} field: {text!r}")
        span, step = match.group(1), int(match.group(2) or 1)
        if step < 1:
            raise CronError(f"bad step in {name} field: {text!r}")
        if span in ("*", "?"):
            first, last = low, high
        elif "-" in span:
            first, last = (_value(v, name, low, high, names) for v in span.split("-"))
        else:
            first = _value(span, name, low, high, names)
            last = high if match.group(2) else first  # "5/15" means from 5 to the end, every 15
        if first > last:
            raise CronError(f"bad range in {name} field: {text!r}")
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _value(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    value = names.get(text.lower()) if not text.isdigit() else int(text)
    if value is None or not low <= value <= high:
        raise CronError(f"{name} value out of range {low}-{high}: {text!r}")
    return value
