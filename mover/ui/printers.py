"""What both commands print for a repository's snapshots: restic's table and JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mover.golang import gotime

if TYPE_CHECKING:
    from mover.view import Snapshot


def local_time(ns: int) -> str:
    """``2006-01-02 15:04:05`` in the local time zone."""
    try:
        off = gotime.local_offset(ns)
    except (ValueError, OverflowError, OSError):  # out of the platform's range (Go's zero time)
        off = 0
    return gotime.format_seconds(ns, off, " ")


def rfc3339(ns: int) -> str:
    """Go's RFC 3339 with nanoseconds and the local offset, as restic prints times."""
    try:
        return gotime.format_ns(ns, gotime.local_offset(ns))
    except (ValueError, OverflowError, OSError):
        return gotime.format_ns(ns)


def snapshot_json(snap: Snapshot) -> dict:
    """restic's ``snapshots --json`` object, with every documented key present (and kopia's
    ``source`` for its snapshots)."""
    d = snap.to_json()
    d.update(id=snap.id.hex(), short_id=snap.short_id)
    d.setdefault("hostname", "")
    d.setdefault("username", "")
    d.setdefault("tags", [])
    d.setdefault("parent", None)
    if snap.source:
        d["source"] = snap.source
    return d


def snapshot_table(snaps: list[Snapshot]) -> str:
    """restic's table: one row per snapshot, extra paths on continuation rows. Snapshots that
    name their source in one string (kopia's) show it in place of host and paths, as the tool
    that wrote them prints it."""
    rows: list[tuple[str, ...]]
    if snaps and all(s.source for s in snaps):
        head: tuple[str, ...] = ("ID", "Time", "Tags", "Source")
        rows = [(s.short_id, local_time(s.time), ",".join(s.tags), s.source) for s in snaps]
    else:
        head = ("ID", "Time", "Host", "Tags", "Paths")
        rows = []
        for s in snaps:
            paths = s.paths or [""]
            rows.append((s.short_id, local_time(s.time), s.hostname, ",".join(s.tags), paths[0]))
            rows += [("", "", "", "", p) for p in paths[1:]]
    last = len(head) - 1
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(last)]

    def fmt(r: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[last]

    rule = "-" * max(len(fmt(r)) for r in [head, *rows])
    n = len(snaps)
    return "\n".join([fmt(head), rule, *map(fmt, rows), rule,
                      f"{n} snapshot{'' if n == 1 else 's'}"]) + "\n"
