"""What a mount shows: virtual directories over snapshot trees.

The repository view lays snapshots out as restic 0.14's mount does (`snapshots/<time>/`,
`snapshots/latest`, `ids/<short id>/`, `hosts/<host>/<time>/`, `tags/<tag>/<time>/`), so scripts
written against `restic mount` keep working. Building it needs the snapshot list only: trees
inside a snapshot are loaded by the filesystem when a directory is looked into.

The bucket view (kbrowse.fuse.bucket) is built from three lazy entries: a :class:`LazyDir` lists
its children when first looked into, a :class:`LazySnapshot` opens its repository when first
entered, and a :class:`TextFile` renders its bytes when first stat'ed or read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mover.golang import gotime
from mover.view import Node, Snapshot, SnapshotView


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
    view: SnapshotView | None = None  # the view it is read from; None: the mount's own view


class _Once:
    """A value computed by the first caller (others wait for it); a failure is not kept."""

    def __init__(self, load: Callable[[], Any]) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._done = False
        self._value: Any = None

    def get(self) -> Any:
        if self._done:
            return self._value
        with self._lock:
            if not self._done:
                self._value = self._load()
                self._done = True
        return self._value


@dataclass(eq=False)
class LazyDir:
    """A virtual directory whose children (and time) are loaded when first needed; loading may
    raise, which the filesystem reports as an error of this directory."""

    load: Callable[[], dict[bytes, Entry]]
    load_mtime: Callable[[], int]
    _children: _Once = field(init=False, repr=False)
    _mtime: _Once = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._children = _Once(lambda: dict(sorted(self.load().items())))
        self._mtime = _Once(self.load_mtime)

    @property
    def children(self) -> dict[bytes, Entry]:
        return self._children.get()

    @property
    def mtime(self) -> int:
        return self._mtime.get()


@dataclass(eq=False)
class LazySnapshot:
    """A directory showing a snapshot's root whose repository is opened when it is first
    entered (listed or looked into); its own stat is virtual, so `ls -l` above opens nothing.
    A block volume (``device``) is the device's bytes: ``open`` gives that one file, and the
    entry is that file, opened when first stat'ed (its size is in the repository)."""

    open: Callable[[], SnapEntry]
    load_mtime: Callable[[], int]
    device: bool = False
    _root: _Once = field(init=False, repr=False)
    _mtime: _Once = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._root = _Once(self.open)
        self._mtime = _Once(self.load_mtime)

    def root(self) -> SnapEntry:
        return self._root.get()

    @property
    def mtime(self) -> int:
        return self._mtime.get()


@dataclass(eq=False)
class TextFile:
    """A read-only file whose bytes are rendered once, when first stat'ed or read."""

    render: Callable[[], bytes]
    load_mtime: Callable[[], int]
    _data: _Once = field(init=False, repr=False)
    _mtime: _Once = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._data = _Once(self.render)
        self._mtime = _Once(self.load_mtime)

    @property
    def data(self) -> bytes:
        return self._data.get()

    @property
    def mtime(self) -> int:
        return self._mtime.get()


Entry = VDir | VLink | SnapEntry | LazyDir | LazySnapshot | TextFile
DIRS = (VDir, LazyDir)  # virtual directories with a ``children`` mapping
RootOf = Callable[[Snapshot], Node]


def time_name(snap: Snapshot) -> str:
    """restic's directory name for a snapshot: Go layout 2006-01-02T15:04:05Z07:00, in the zone
    the snapshot's time was written in (the backup host's), not this host's."""
    secs = snap.time // 10**9 * 10**9
    off = gotime.local_offset(secs) if snap.utc_offset is None else snap.utc_offset
    return gotime.format_ns(secs, off)


def vdir(children: Mapping[bytes, Entry], mtime: int) -> VDir:
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


def repository_root(snaps: list[Snapshot], root_of: RootOf) -> dict[bytes, VDir]:
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


class RepositoryTree:
    """A repository mount's root, built again when the repository's snapshot list changes
    (a backup lands, a snapshot is forgotten): only new snapshot files are read."""

    def __init__(self, view: SnapshotView) -> None:
        self.view = view
        self._snaps = view.snapshots()

    def root(self) -> VDir:
        top = repository_root(self._snaps, self.view.root)
        return vdir(top, max(e.mtime for e in top.values()))

    def reload(self) -> VDir | None:
        """The new root, or None when the snapshot list is the same."""
        if not self.view.refresh():
            return None
        self._snaps = self.view.snapshots()
        return self.root()
