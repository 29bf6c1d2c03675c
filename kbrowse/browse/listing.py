"""Text and JSON forms of snapshots and tree entries, for ``kbrowse snapshots`` and ``ls``.

Names are shown with Go's quoting (``mover.golang.gojson.go_quote``) when they hold anything
unprintable or not UTF-8, so one entry is always one line of text.
"""

from __future__ import annotations

import stat

from mover.golang import gotime
from mover.golang.gojson import go_quote
from mover.repo.snapshot import Snapshot
from mover.repo.tree import Node, posix_perm_from_go

_KIND = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "fifo": stat.S_IFIFO,
         "chardev": stat.S_IFCHR, "dev": stat.S_IFBLK, "socket": stat.S_IFSOCK}


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


def mode_string(node: Node) -> str:
    """``drwxr-xr-x`` style; ``?`` for types POSIX has no letter for."""
    return stat.filemode(_KIND.get(node.type, 0) | posix_perm_from_go(node.mode))


def long_line(node: Node, shown: str) -> str:
    line = (f"{mode_string(node)} {node.user or node.uid:<8} {node.group or node.gid:<8} "
            f"{node.size:>12} {local_time(node.mtime)} {go_quote(shown)}")
    if node.type == "symlink":
        line += f" -> {go_quote(node.linktarget)}"
    return line


def node_json(node: Node, path: str) -> dict:
    """One ``ls --json`` line; restic's fields plus owner names and the link target."""
    d = {"name": node.name, "type": node.type, "path": path, "uid": node.uid, "gid": node.gid,
         "user": node.user, "group": node.group, "size": node.size, "mode": node.mode,
         "permissions": mode_string(node), "mtime": rfc3339(node.mtime),
         "atime": rfc3339(node.atime), "ctime": rfc3339(node.ctime), "struct_type": "node"}
    if node.type == "symlink":
        d["linktarget"] = node.linktarget
    return d


def snapshot_json(snap: Snapshot) -> dict:
    """restic's ``snapshots --json`` object, with every documented key present."""
    d = snap.to_json()
    d.update(id=snap.id.hex(), short_id=snap.short_id)
    d.setdefault("hostname", "")
    d.setdefault("username", "")
    d.setdefault("tags", [])
    d.setdefault("parent", None)
    return d


def snapshot_table(snaps: list[Snapshot]) -> str:
    """restic's table: one row per snapshot, extra paths on continuation rows."""
    head = ("ID", "Time", "Host", "Tags", "Paths")
    rows: list[tuple[str, ...]] = []
    for s in snaps:
        paths = s.paths or [""]
        rows.append((s.short_id, local_time(s.time), s.hostname, ",".join(s.tags), paths[0]))
        rows += [("", "", "", "", p) for p in paths[1:]]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]

    def fmt(r: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[4]

    rule = "-" * max(len(fmt(r)) for r in [head, *rows])
    n = len(snaps)
    return "\n".join([fmt(head), rule, *map(fmt, rows), rule,
                      f"{n} snapshot{'' if n == 1 else 's'}"]) + "\n"
