"""The read side every browser uses: :class:`SnapshotView`.

The TUI, the FUSE filesystem and ``kbrowse ls/cat/cp`` talk to a repository only through this
protocol, so each repository format (restic's in :mod:`mover.repo`, kopia's beside it) stands
behind one implementation and nothing above it knows which one it reads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from mover.progress import Counters
from mover.view.node import Node
from mover.view.snapshot import Snapshot


@dataclass
class RestoreResult:
    files: int = 0  # entries other than directories (files, symlinks, FIFOs, devices, links)
    dirs: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors and not self.cancelled


class SnapshotView(Protocol):
    """Snapshots of one repository, their trees and their files' bytes.

    Errors are :class:`mover.errors.RepoError` (``NotFound`` for a missing snapshot or
    path), with messages that name what failed. Every method may be called from any thread.
    """

    def location(self) -> str:
        """Where the repository is, as the user would type it."""
        ...

    def snapshots(self) -> list[Snapshot]:
        """All snapshots as of the last :meth:`refresh` (read on first use), oldest first."""
        ...

    def refresh(self) -> bool:
        """Take in snapshots written or removed since, and what reading them needs (new index
        files); True when the snapshot list changed."""
        ...

    def matching_snapshots(self, prefix: str) -> list[Snapshot]:
        """The snapshots whose id starts with ``prefix`` (hex), without reading the others."""
        ...

    def find_snapshot(self, ref: str) -> Snapshot:
        """An id, a unique id prefix, or ``latest``."""
        ...

    def root(self, snap: Snapshot) -> Node:
        ...

    def list_dir(self, node: Node) -> list[Node]:
        """A directory's entries, sorted bytewise by name."""
        ...

    def lookup(self, snap: Snapshot, path: str) -> Node:
        """The node at ``path`` ('/' or '' is the root); NotFound names the missing part."""
        ...

    def read(self, node: Node, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes of a file from ``offset`` (fewer only at the end)."""
        ...

    def iter_content(self, node: Node) -> Iterator[bytes]:
        """A file's bytes in order, in chunks, read ahead of the caller."""
        ...

    def prefetch(self, node: Node, offset: int, size: int) -> None:
        """Start loading that byte range in the background, so a later :meth:`read` of it
        finds it ready; errors are left for that read to report."""
        ...

    def preload(self) -> None:
        """Start loading, in the background, what the first read of any tree needs (an
        index), so a mount or an app is quick on its first click."""
        ...

    def read_lock(self) -> AbstractContextManager[None]:
        """Held while a long-lived reader (a mount) uses the repository: a shared lock where
        the format has one (so a prune waits), nothing where it has none."""
        ...

    def restore(self, node: Node, dest: str, counters: Counters | None = None, *,
                cancel: threading.Event | None = None,
                workers: int | None = None) -> RestoreResult:
        """Restore ``node`` into ``dest``: a directory's contents go into ``dest``, a file to
        ``dest/<name>`` when ``dest`` is a directory, else to the path ``dest``. Problems with
        single entries are collected in the result; ``cancel`` stops it early."""
        ...

    def close(self) -> None:
        ...
