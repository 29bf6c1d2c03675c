"""What changed between two snapshots: added, removed and changed entries.

Folders whose subtree ids are equal are identical and never read, so comparing a snapshot with
its parent costs about as much as reading the folders that changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from kbrowse.browse import snappath
from mover.view import SnapshotView
from mover.view.node import Node
from mover.view.snapshot import Snapshot

ADDED, REMOVED, CHANGED, METADATA = "added", "removed", "changed", "metadata"


@dataclass
class Change:
    kind: str
    path: str
    old: Node | None
    new: Node | None

    @property
    def node(self) -> Node:
        node = self.new or self.old
        assert node is not None
        return node


def parent_of(snap: Snapshot, snaps: list[Snapshot]) -> Snapshot | None:
    """The snapshot's recorded parent if the repository still has it, else the newest older
    snapshot of the same host and paths (restic's rule for picking a parent)."""
    if snap.parent:
        for s in snaps:
            if s.id == snap.parent:
                return s
    older = [s for s in snaps if (s.time, s.id) < (snap.time, snap.id)
             and s.hostname == snap.hostname and sorted(s.paths) == sorted(snap.paths)]
    return max(older, key=lambda s: (s.time, s.id)) if older else None


def _content_changed(a: Node, b: Node) -> bool:
    if a.type == "file":
        return a.content != b.content or a.size != b.size
    if a.type == "symlink":
        return a.linktarget != b.linktarget
    if a.type in ("dev", "chardev"):
        return a.device != b.device
    return False


def _meta_changed(a: Node, b: Node) -> bool:
    return (a.mode, a.mtime, a.uid, a.gid, a.xattrs) != (b.mode, b.mtime, b.uid, b.gid, b.xattrs)


def compare(view: SnapshotView, old_root: Node, new_root: Node,
            cancelled: Callable[[], bool] = lambda: False) -> Iterator[Change]:
    """Changes below two folders, in path order. A folder's own metadata is not compared:
    every change inside one moves its mtime, so it would only repeat what is listed."""

    def whole(kind: str, path: str, node: Node) -> Iterator[Change]:
        yield Change(kind, path, node if kind == REMOVED else None, node if kind == ADDED else None)
        if node.type == "dir":
            for child in view.list_dir(node):
                if cancelled():
                    return
                yield from whole(kind, snappath.join(path, child.name), child)

    def walk(path: str, old: Node, new: Node) -> Iterator[Change]:
        if old.subtree == new.subtree or cancelled():
            return
        before = {n.name: n for n in view.list_dir(old)}
        after = {n.name: n for n in view.list_dir(new)}
        for name in sorted(before.keys() | after.keys(), key=lambda s: s.encode("utf-8", "surrogateescape")):
            if cancelled():
                return
            a, b = before.get(name), after.get(name)
            child = snappath.join(path, name)
            if b is None:
                assert a is not None  # every name is in one of the two
                yield from whole(REMOVED, child, a)
            elif a is None:
                yield from whole(ADDED, child, b)
            elif a.type != b.type:
                yield from whole(REMOVED, child, a)
                yield from whole(ADDED, child, b)
            elif a.type == "dir":
                yield from walk(child, a, b)
            elif _content_changed(a, b):
                yield Change(CHANGED, child, a, b)
            elif _meta_changed(a, b):
                yield Change(METADATA, child, a, b)

    yield from walk("/", old_root, new_root)
