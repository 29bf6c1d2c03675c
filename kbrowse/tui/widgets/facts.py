"""File facts: everything the snapshot records about one entry."""

from __future__ import annotations

import os

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from kbrowse.tui.fmt import display_name, mode_string, node_time, node_type
from mover.view.node import Node


def facts_table(node: Node, path: str) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")

    def row(key: str, value: str | Text) -> None:
        grid.add_row(key, value if isinstance(value, Text) else Text(value))

    row("path", display_name(path))
    row("type", node_type(node))
    if node.type != "dir":
        row("size", f"{node.size:,} bytes")
    row("mode", f"{mode_string(node)} ({node.mode & 0o7777:04o})")
    row("owner", f"{node.user or node.uid} ({node.uid}) : {node.group or node.gid} ({node.gid})")
    row("modified", node_time(node.mtime))
    row("accessed", node_time(node.atime))
    row("changed", node_time(node.ctime))
    if node.inode:
        row("inode", f"{node.inode}" + (f", {node.links} links" if node.links > 1 else ""))
    if node.type == "symlink":
        row("target", display_name(node.linktarget))
    if node.type in ("dev", "chardev"):
        row("device", f"{os.major(node.device)}:{os.minor(node.device)}")
    if node.type == "file":
        row("blobs", str(len(node.content or [])))
    if node.type == "dir" and node.subtree:
        row("tree", node.subtree.hex()[:16])
    for name, value in node.xattrs:
        shown = value.decode("utf-8", "backslashreplace")
        row("xattr", f"{display_name(name)} = {shown[:80]}")
    if node.error:
        row("error", Text(node.error, style="red"))
    return grid


class Facts(Static):
    """The facts of the highlighted entry, or nothing."""

    def show(self, node: Node | None, path: str = "") -> None:
        self.update(facts_table(node, path) if node is not None else "")
