"""RFC 3339 times with nanoseconds, as Go's time.Time marshals them.

Python's datetime stops at microseconds, so times are carried as integer nanoseconds since the
Unix epoch. Go clamps node years to 0..9999; Python's calendar starts at year 1.
"""

from __future__ import annotations

import functools
import re
import time
from datetime import UTC, date, datetime
from typing import NoReturn

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = _EPOCH.toordinal()
_MIN_NS = -62135596800 * 10**9  # 0001-01-01T00:00:00Z, Go's zero time
_MAX_NS = (253402300799 * 10**9) + 999_999_999  # 9999-12-31T23:59:59.999999999Z
# As Go reads it, with any number of fraction digits (past the ninth ignored), and as msgspec's
# check of a tree's times (mover.repo.tree) lets through, also a zone without its colon
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:?\d{2})$"
)

ZERO = _MIN_NS


def format_ns(ns: int, utc_offset_s: int = 0) -> str:
    """Format epoch nanoseconds like Go's RFC3339Nano (trailing zeros trimmed, UTC as Z).

    Every node of a tree carries three times, so this is a good part of encoding a directory:
    the calendar date comes from a per-day cache, the rest is integer arithmetic.
    """
    ns = min(max(ns, _MIN_NS), _MAX_NS)
    secs, frac = divmod(ns, 10**9)
    days, sod = divmod(secs + utc_offset_s, 86400)
    try:
        day = _day_text(days)
    except ValueError:  # an offset pushed the date past year 9999 or before year 1: write UTC
        return format_ns(ns)
    h, rem = divmod(sod, 3600)
    s = f"{day}T{h:02d}:{rem // 60:02d}:{rem % 60:02d}"
    if frac:
        s += "." + f"{frac:09d}".rstrip("0")
    if utc_offset_s == 0:
        return s + "Z"
    sign = "+" if utc_offset_s >= 0 else "-"
    off = abs(utc_offset_s)
    return f"{s}{sign}{off // 3600:02d}:{off % 3600 // 60:02d}"


def format_seconds(ns: int, utc_offset_s: int = 0, sep: str = "T") -> str:
    """``2006-01-02T15:04:05`` (``sep`` between date and time): :func:`format_ns`'s date and
    time without the fraction and the zone, for ``ls -l`` (one per entry)."""
    ns = min(max(ns, _MIN_NS), _MAX_NS)
    secs = ns // 10**9
    days, sod = divmod(secs + utc_offset_s, 86400)
    try:
        day = _day_text(days)
    except ValueError:  # an offset pushed the date past year 9999 or before year 1: UTC
        days, sod = divmod(secs, 86400)
        day = _day_text(days)
    h, rem = divmod(sod, 3600)
    return f"{day}{sep}{h:02d}:{rem // 60:02d}:{rem % 60:02d}"


@functools.lru_cache(maxsize=4096)
def _day_text(days: int) -> str:
    """``YYYY-MM-DD`` of the day ``days`` after 1970-01-01."""
    d = date.fromordinal(_EPOCH_DAY + days)
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"


# parse_ns matches the minute (cached) and the rest apart: a tree's times mostly differ in their
# seconds and fractions, while thousands of them share a minute
_MINUTE = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})")
_REST = re.compile(r":(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:?\d{2})")
FRACTION_SCALE = tuple(10 ** (9 - digits) for digits in range(10))


def parse_ns(text: str) -> int:
    """Parse RFC 3339 into epoch nanoseconds (the fraction's digits past the ninth ignored).

    Every node of a tree carries three times, so this is the bulk of decoding a directory: the
    calendar arithmetic is cached per minute instead of building a datetime per call.
    """
    m = _REST.fullmatch(text, 16)
    base = _minute_seconds(text[:16]) if m is not None else None
    if m is None or base is None or int(m[1]) > 59:
        _invalid(text)
    frac = m[2]
    return ((base + int(m[1]) - _offset(m[3])) * 1_000_000_000
            + (int(frac[:9]) * FRACTION_SCALE[min(len(frac), 9)] if frac else 0))


@functools.lru_cache(maxsize=4096)
def _minute_seconds(prefix: str) -> int | None:
    """Seconds from the epoch to a ``YYYY-MM-DDTHH:MM`` in UTC, None if it is no such minute
    (ValueError if the day does not exist)."""
    m = _MINUTE.fullmatch(prefix)
    if m is None or int(m[4]) > 23 or int(m[5]) > 59:
        return None
    return _day_seconds(prefix[:10]) + int(m[4]) * 3600 + int(m[5]) * 60


def _invalid(text: str) -> NoReturn:
    """Raise the ValueError that says what is wrong with a time parse_ns could not read."""
    m = _RFC3339.match(text)
    if not m:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    raise ValueError(f"time of day out of range in {text!r}")


@functools.lru_cache(maxsize=4096)
def _day_seconds(ymd: str) -> int:
    """Seconds from the epoch to 00:00 UTC of a YYYY-MM-DD day (ValueError if no such day)."""
    y = max(int(ymd[:4]), 1)  # Go's year 0 has no Python equivalent; clamp to the zero time's year
    return (date(y, int(ymd[5:7]), int(ymd[8:10])).toordinal() - _EPOCH_DAY) * 86400


def parse_offset(text: str) -> int:
    """The UTC offset in seconds an RFC 3339 time was written with (restic names snapshots in it)."""
    m = _RFC3339.match(text)
    if not m:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    return _offset(m.group(8))


def _offset(tz: str) -> int:
    if tz in ("Z", "z"):
        return 0
    return (int(tz[1:3]) * 3600 + int(tz[-2:]) * 60) * (1 if tz[0] == "+" else -1)


# between these, well inside datetime's years 1..9999 in any zone, localtime's tm_gmtoff is what
# datetime.astimezone() computes (from localtime too) at a tenth of the cost; `ls -l` asks per entry
_LOCALTIME_FROM = -2208988800  # 1900-01-01
_LOCALTIME_TO = 253370764800  # 9999-01-01


def local_offset(ns: int) -> int:
    """The local time zone's UTC offset in seconds at the given time."""
    secs = ns // 10**9
    if _LOCALTIME_FROM <= secs < _LOCALTIME_TO:
        return time.localtime(secs).tm_gmtoff
    offset = datetime.fromtimestamp(secs).astimezone().utcoffset()
    assert offset is not None  # astimezone() gives an aware datetime
    return int(offset.total_seconds())


def equals_ns(text: str, ns: int) -> bool:
    """Whether the RFC 3339 ``text`` is the time ``ns``, as ``parse_ns(text) == ns`` says, but
    without parsing a text in the UTC form :func:`format_ns` writes: the no-change backup asks
    this of two times of every file, and most share their second with the file before."""
    secs, frac = divmod(ns, 1_000_000_000)
    if text.endswith("Z") and text.startswith(_second_text(secs)):
        digits = text[20:-1]
        if len(text) == 20:
            return frac == 0
        if text[19] == "." and len(digits) <= 9 and digits.isdigit() and digits.isascii():
            return int(digits) * FRACTION_SCALE[len(digits)] == frac
    return parse_ns(text) == ns


@functools.lru_cache(maxsize=4096)
def _second_text(secs: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of a second from the epoch, in UTC (outside Go's years, a text
    that starts no time)."""
    if not _MIN_NS <= secs * 10**9 <= _MAX_NS:
        return "\0"  # no text starts with it: parse_ns decides
    days, sod = divmod(secs, 86400)
    h, rem = divmod(sod, 3600)
    return f"{_day_text(days)}T{h:02d}:{rem // 60:02d}:{rem % 60:02d}"
