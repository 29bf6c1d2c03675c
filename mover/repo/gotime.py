"""RFC 3339 times with nanoseconds, as Go's time.Time marshals them.

Python's datetime stops at microseconds, so times are carried as integer nanoseconds since the
Unix epoch. Go clamps node years to 0..9999; Python's calendar starts at year 1.
"""

from __future__ import annotations

import functools
import re
from datetime import date, datetime, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EPOCH_DAY = _EPOCH.toordinal()
_MIN_NS = -62135596800 * 10**9  # 0001-01-01T00:00:00Z, Go's zero time
_MAX_NS = (253402300799 * 10**9) + 999_999_999  # 9999-12-31T23:59:59.999999999Z
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$"
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


@functools.lru_cache(maxsize=4096)
def _day_text(days: int) -> str:
    """``YYYY-MM-DD`` of the day ``days`` after 1970-01-01."""
    d = date.fromordinal(_EPOCH_DAY + days)
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"


@functools.lru_cache(maxsize=16384)
def parse_ns(text: str) -> int:
    """Parse RFC 3339 (with up to 9 fraction digits) into epoch nanoseconds.

    Every node of a tree carries three times, so this is the bulk of decoding a directory:
    the calendar arithmetic is cached per day instead of building a datetime per call, and
    whole results are cached too, since a node's three times are often one and the same
    (restic and mover record atime = mtime, and a file written once has ctime = mtime).
    """
    m = _RFC3339.match(text)
    if not m:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    _, _, _, h, mi, s, frac, tz = m.groups()
    h, mi, s = int(h), int(mi), int(s)
    if h > 23 or mi > 59 or s > 59:
        raise ValueError(f"time of day out of range in {text!r}")
    secs = _day_seconds(text[:10]) + h * 3600 + mi * 60 + s - _offset(tz)
    return secs * 10**9 + (int(frac.ljust(9, "0")) if frac else 0)


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
    return (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60) * (1 if tz[0] == "+" else -1)


def local_offset(ns: int) -> int:
    """The local time zone's UTC offset in seconds at the given time."""
    secs = ns // 10**9
    return int(datetime.fromtimestamp(secs).astimezone().utcoffset().total_seconds())
