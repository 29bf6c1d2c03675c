"""Text and JSON forms of tree entries, for ``kbrowse ls`` (snapshots: :mod:`mover.ui.printers`).

Names are shown with Go's quoting (``mover.golang.gojson.go_quote``) when they hold anything
unprintable or not UTF-8, so one entry is always one line of text.
"""

from __future__ import annotations

import functools
import stat
import time

from mover.golang import gotime
from mover.golang.gojson import go_quote
from mover.ui.printers import local_time, rfc3339
from mover.view import Node
from mover.view.node import NODE_IFMT, posix_perm_from_go


def mode_string(node: Node) -> str:
    """``drwxr-xr-x`` style; ``?`` for types POSIX has no letter for."""
    return _mode_text(node.type, node.mode)


# `ls -l -R` writes a line per entry of the snapshot: what most entries share (a mode, an owner,
# the minute of their mtime) is formatted once
@functools.cache
def _mode_text(type_: str, mode: int) -> str:
    return stat.filemode(NODE_IFMT.get(type_, 0) | posix_perm_from_go(mode))


@functools.cache
def _owner_text(user: str, uid: int, group: str, gid: int) -> str:
    return f"{user or uid:<8} {group or gid:<8}"


def long_line(node: Node, shown: str) -> str:
    line = (f"{_mode_text(node.type, node.mode)} {_owner_text(node.user, node.uid, node.group, node.gid)} "
            f"{node.size:>12} {entry_time(node.mtime_raw)} {go_quote(shown)}")
    if node.type == "symlink":
        line += f" -> {go_quote(node.linktarget)}"
    return line


_minutes: dict[int | str, str] = {}  # a minute -> its local "YYYY-MM-DD HH:MM:", "" if none
_minutes_zone = time.tzname  # the zone they are in: time.tzset() makes a new tuple


def entry_time(t: int | str) -> str:
    """:func:`local_time` of a time as a node holds it (:attr:`Node.mtime_raw`): nanoseconds,
    or RFC 3339 text, which needs no parsing when its minute was seen before (text and local
    time share the seconds when both zones are whole minutes, as RFC 3339's are)."""
    global _minutes_zone
    if time.tzname is not _minutes_zone:
        _minutes.clear()
        _minutes_zone = time.tzname
    if t.__class__ is str:
        text = str(t)
        if not text:
            return local_time(gotime.ZERO)
        key: int | str = text[:16] + text[19:].lstrip(".0123456789")  # minute and zone
        seconds = text[17:19]
    else:
        secs = int(t) // 1_000_000_000
        key, second = divmod(secs, 60)
        seconds = f"{second:02d}"
    prefix = _minutes.get(key)
    if prefix is None:
        if len(_minutes) >= 4096:
            _minutes.clear()
        start = gotime.parse_ns(f"{key[:16]}:00{key[16:]}") if isinstance(key, str) else key * 60 * 10**9
        prefix = _minutes[key] = _minute_prefix(start)
    if prefix:
        return prefix + seconds
    return local_time(gotime.parse_ns(str(t)) if t.__class__ is str else int(t))


def _minute_prefix(start: int) -> str:
    """The local ``YYYY-MM-DD HH:MM:`` of the minute from ``start`` (ns), or "" when the local
    offset is not one whole number of minutes all through it (a zone's change, old local mean
    times, a time out of the platform's range)."""
    try:
        off = gotime.local_offset(start)
        if off % 60 or gotime.local_offset(start + 59 * 10**9) != off:
            return ""
    except (ValueError, OverflowError, OSError):
        return ""
    return gotime.format_seconds(start, off, " ")[:-2]


def node_json(node: Node, path: str) -> dict:
    """One ``ls --json`` line; restic's fields plus owner names and the link target."""
    d = {"name": node.name, "type": node.type, "path": path, "uid": node.uid, "gid": node.gid,
         "user": node.user, "group": node.group, "size": node.size, "mode": node.mode,
         "permissions": mode_string(node), "mtime": rfc3339(node.mtime),
         "atime": rfc3339(node.atime), "ctime": rfc3339(node.ctime), "struct_type": "node"}
    if node.type == "symlink":
        d["linktarget"] = node.linktarget
    return d
