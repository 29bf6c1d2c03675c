"""Text and JSON forms of tree entries, for ``kbrowse ls`` (snapshots: :mod:`mover.ui.printers`).

Names are shown with Go's quoting (``mover.golang.gojson.go_quote``) when they hold anything
unprintable or not UTF-8, so one entry is always one line of text.
"""

from __future__ import annotations

import stat

from mover.golang.gojson import go_quote
from mover.ui.printers import local_time, rfc3339
from mover.view import Node
from mover.view.node import NODE_IFMT, posix_perm_from_go


def mode_string(node: Node) -> str:
    """``drwxr-xr-x`` style; ``?`` for types POSIX has no letter for."""
    return stat.filemode(NODE_IFMT.get(node.type, 0) | posix_perm_from_go(node.mode))


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
