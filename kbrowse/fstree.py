"""What a mount shows: virtual directories over snapshot trees.

The repository view lays snapshots out as restic 0.14's mount does (`snapshots/<time>/`,
`snapshots/latest`, `ids/<short id>/`, `hosts/<host>/<time>/`, `tags/<tag>/<time>/`), so scripts
written against `restic mount` keep working. Building it needs the snapshot list only: trees
inside a snapshot are loaded by the filesystem when a directory is looked into. Another view
(Velero backups in a bucket) becomes one more top-level entry beside these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mover.repo import gotime
from mover.repo.snapshot import Snapshot
from mover.repo.tree import Node


@dataclass(frozen=True, eq=False)
class VDir:
    """A directory that exists only in the mount; children sorted by name."""

    children: dict[bytes, Entry]
    mtime: int


@dataclass(frozen=True, eq=False)
class VLink:
    """A symlink that exists only in the mount (`latest`)."""

    target: bytes
    mtime: int


@dataclass(frozen=True, eq=False)
class SnapEntry:
    """A node of a snapshot's tree; ``path`` is its path inside the snapshot (b"" = root)."""

    snap: Snapshot
    node: Node
    path: bytes


Entry = VDir | VLink | SnapEntry
RootOf = Callable[[Snapshot], Node]


def time_name(snap: Snapshot) -> str:
    """restic's directory name for a snapshot: Go layout 2006-01-02T15:04:05Z07:00, in the zone
    the snapshot's time was written in (the backup host's), not this host's."""
    secs = snap.time // 10**9 * 10**9
    off = gotime.local_offset(secs) if snap.utc_offset is None else snap.utc_offset
    return gotime.format_ns(secs, off)


def vdir(children: dict[bytes, Entry], mtime: int) -> VDir:
    return VDir(dict(sorted(children.items())), mtime)


def _unique(taken: dict[bytes, Entry], name: str) -> bytes:
    # restic appends -1, -2, ... in time order, so the oldest keeps the plain name
    cand, i = name, 0
    while cand.encode() in taken:
        i += 1
        cand = f"{name}-{i}"
    return cand.encode()


def _dir_name(s: str) -> str:
    # a host or tag becomes one path component: no '/', and not '.' or '..'
    return s.replace("/", "_") if s not in (".", "..") else s.replace(".", "_")


def time_dir(snaps: list[Snapshot], root_of: RootOf) -> VDir:
    """Snapshots named by time, oldest first, plus a `latest` symlink to the newest."""
    children: dict[bytes, Entry] = {}
    name = b""
    for s in snaps:
        name = _unique(children, time_name(s))
        children[name] = SnapEntry(s, root_of(s), b"")
    if snaps:
        children[b"latest"] = VLink(name, snaps[-1].time)
    return vdir(children, snaps[-1].time if snaps else 0)


def repository_root(snaps: list[Snapshot], root_of: RootOf) -> dict[bytes, Entry]:
    """The top-level entries of a repository mount."""
    snaps = sorted(snaps, key=lambda s: (s.time, s.id))
    newest = snaps[-1].time if snaps else 0
    ids: dict[bytes, Entry] = {}
    for s in snaps:
        ids[_unique(ids, s.short_id)] = SnapEntry(s, root_of(s), b"")
    by_host: dict[str, list[Snapshot]] = {}
    by_tag: dict[str, list[Snapshot]] = {}
    for s in snaps:
        if s.hostname:
            by_host.setdefault(_dir_name(s.hostname), []).append(s)
        for t in dict.fromkeys(s.tags):
            if t:
                by_tag.setdefault(_dir_name(t), []).append(s)

    def group(groups: dict[str, list[Snapshot]]) -> VDir:
        return vdir({k.encode(): time_dir(v, root_of) for k, v in groups.items()}, newest)

    return {
        b"snapshots": time_dir(snaps, root_of),
        b"ids": vdir(ids, newest),
        b"hosts": group(by_host),
        b"tags": group(by_tag),
    }
