"""The format-neutral read side: the :class:`SnapshotView` protocol and the types it speaks
(:class:`Snapshot`, :class:`Node`, :class:`RestoreResult`), and a blob cache views can share.
kbrowse reads every repository format through these alone."""

from mover.view.cache import BlobCache
from mover.view.node import Node
from mover.view.protocol import RestoreResult, SnapshotView
from mover.view.snapshot import Snapshot

__all__ = ["BlobCache", "Node", "RestoreResult", "Snapshot", "SnapshotView"]
