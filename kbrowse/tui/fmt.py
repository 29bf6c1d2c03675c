"""How nodes and snapshots read in the UI: sizes, modes, times, names one line long."""

from __future__ import annotations

from functools import lru_cache

from kbrowse.browse.listing import mode_string
from mover.golang import gotime
from mover.golang.gojson import go_quote
from mover.progress import human_bytes
from mover.ui.printers import local_time
from mover.view.node import Node
from mover.view.snapshot import Snapshot

__all__ = ["counted", "display_name", "mode_string", "node_time", "node_type", "size_text",
           "snapshot_time"]

_TYPES = {"file": "file", "dir": "dir", "symlink": "link", "dev": "block dev", "chardev": "char dev",
          "fifo": "fifo", "socket": "socket", "irregular": "irregular"}


def display_name(name: str) -> str:
    """One printable line, whatever bytes the name holds (Go's quoting, as the CLI shows)."""
    return go_quote(name)


@lru_cache(maxsize=65536)  # a listing's files often share a few mtimes; formatting is not free
def node_time(ns: int) -> str:
    return "" if ns <= gotime.ZERO else local_time(ns)


def snapshot_time(snap: Snapshot) -> str:
    return local_time(snap.time)


def size_text(node: Node) -> str:
    if node.type == "dir":
        return ""
    return human_bytes(node.size)


def node_type(node: Node) -> str:
    return _TYPES.get(node.type, node.type)


def counted(n: int, noun: str) -> str:
    """``1 file``, ``2 files``, ``1,024 folders``."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")
