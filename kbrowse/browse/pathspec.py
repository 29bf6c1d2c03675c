"""``SNAPSHOT[:PATH]`` arguments: which snapshot, and which entry inside it.

SNAPSHOT is a full id, an unambiguous prefix, or ``latest``; ids never hold ``:``, so the first
``:`` separates the path. A missing or empty PATH means the snapshot's root.
"""

from __future__ import annotations

from dataclasses import dataclass

from mover.ui.cliargs import UsageError
from mover.view import SnapshotView
from mover.view.node import Node
from mover.view.snapshot import Snapshot


@dataclass
class Target:
    snapshot: Snapshot
    path: str  # normalised, absolute inside the snapshot: "/" or "/a/b"
    node: Node


def split(spec: str) -> tuple[str, str]:
    """``"abc123:/etc/x"`` -> ``("abc123", "/etc/x")``; the path defaults to ``/``."""
    ref, _, path = spec.partition(":")
    if not ref:
        raise UsageError(f"{spec!r}: no snapshot given (use SNAPSHOT[:PATH], e.g. latest:/etc)")
    return ref, normalise(path)


def normalise(path: str) -> str:
    return "/" + "/".join(p for p in path.split("/") if p and p != ".")


def resolve(view: SnapshotView, spec: str) -> Target:
    ref, path = split(spec)
    if ".." in path.split("/"):
        raise UsageError(f"{spec!r}: '..' is not allowed in a snapshot path")
    snap = view.find_snapshot(ref)
    return Target(snap, path, view.lookup(snap, path))
