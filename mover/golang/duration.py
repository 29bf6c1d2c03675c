"""Go's time.Duration text forms, which Velero's JSON (metav1.Duration) and CLI use.

``parse_duration`` takes what time.ParseDuration takes ("720h", "1h30m", "1.5s", "-2m");
``format_duration`` is Duration.String ("720h0m0s", "1.5s", "0s"); ``short_human`` is
apimachinery's ShortHumanDuration, the "29d" that ``velero backup get`` prints. Durations are
nanoseconds.
"""

from __future__ import annotations

import re

NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9,
      "m": 60 * 10**9, "h": 3600 * 10**9}
_PART = re.compile(r"(\d*\.?\d*)(ns|us|µs|μs|ms|s|m|h)")
SECOND = 10**9


def parse_duration(text: str) -> int:
    """Nanoseconds in a Go duration string; ValueError when it is not one."""
    s = text.strip()
    sign = -1 if s.startswith("-") else 1
    s = s.lstrip("+-")
    if s == "0":
        return 0
    if not s:  # "" or a bare sign
        raise ValueError(f"invalid duration {text!r}")
    pos, total = 0, 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m or m.group(1) in ("", "."):
            raise ValueError(f"invalid duration {text!r}")
        whole, _, frac = m.group(1).partition(".")
        unit = NS[m.group(2)]
        total += int(whole or 0) * unit + (int(frac) * unit // 10 ** len(frac) if frac else 0)
        pos = m.end()
    return sign * total


def _frac(v: int, prec: int) -> tuple[str, int]:
    """Go's fmtFrac: the fraction of v / 10**prec without trailing zeros, and v // 10**prec."""
    digits = f"{v % 10**prec:0{prec}d}".rstrip("0")
    return ("." + digits if digits else ""), v // 10**prec


def format_duration(ns: int) -> str:
    """Duration.String."""
    if ns == 0:
        return "0s"
    sign, u = ("-" if ns < 0 else ""), abs(ns)
    if u < SECOND:
        for limit, prec, unit in ((1_000, 0, "ns"), (1_000_000, 3, "µs"), (SECOND, 6, "ms")):
            if u < limit:
                frac, whole = _frac(u, prec) if prec else ("", u)
                return f"{sign}{whole}{frac}{unit}"
    frac, secs = _frac(u, 9)
    out = f"{secs % 60}{frac}s"
    minutes = secs // 60
    if minutes:
        out = f"{minutes % 60}m{out}"
        if minutes // 60:
            out = f"{minutes // 60}h{out}"
    return sign + out


def short_human(ns: int) -> str:
    """ShortHumanDuration: "<invalid>", "0s", "42s", "5m", "3h", "29d" or "2y"."""
    seconds = int(ns / SECOND)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60:
        return f"{seconds}s"
    if (minutes := seconds // 60) < 60:
        return f"{minutes}m"
    if (hours := seconds // 3600) < 24:
        return f"{hours}h"
    if hours < 24 * 365:
        return f"{hours // 24}d"
    return f"{hours // 24 // 365}y"
