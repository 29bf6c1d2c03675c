"""Find entries in a snapshot by name or glob, walking its trees."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator

from kbrowse.browse import snappath
from mover.errors import RepoError
from mover.view import SnapshotView
from mover.view.node import Node

GLOB_CHARS = frozenset("*?[")


def matcher(pattern: str) -> Callable[[str, str], bool]:
    """``(name, path) -> bool``, case-insensitive.

    A pattern with ``*?[`` is a glob, otherwise a substring; it is matched against the whole
    path when it holds a ``/``, else against the name.
    """
    pat = pattern.strip().casefold()
    on_path = "/" in pat
    if GLOB_CHARS & set(pat):
        def glob(name: str, path: str) -> bool:
            return fnmatch.fnmatchcase((path if on_path else name).casefold(), pat)
        return glob

    def substring(name: str, path: str) -> bool:
        return pat in (path if on_path else name).casefold()
    return substring


class Walker:
    """Walks one snapshot depth first; keeps the folders it read, so the next search is fast."""

    def __init__(self, view: SnapshotView, root: Node) -> None:
        self.view = view
        self.root = root
        self._dirs: dict[bytes, list[Node]] = {}
        self.errors: list[str] = []

    def children(self, node: Node) -> list[Node]:
        key = node.subtree or b""
        nodes = self._dirs.get(key)
        if nodes is None:
            nodes = self._dirs[key] = self.view.list_dir(node)
        return nodes

    def walk(self, cancelled: Callable[[], bool]) -> Iterator[tuple[str, Node]]:
        """Every entry below the root as (path, node), parents before children."""
        stack: list[tuple[str, Node]] = [("/", self.root)]
        while stack:
            if cancelled():
                return
            path, node = stack.pop()
            try:
                children = self.children(node)
            except RepoError as e:
                self.errors.append(f"{path}: {e}")
                continue
            subdirs = []
            for child in children:
                child_path = snappath.join(path, child.name)
                yield child_path, child
                if child.type == "dir":
                    subdirs.append((child_path, child))
            stack.extend(reversed(subdirs))
