"""The read-only filesystem behind `kbrowse mount`, by path, and how it is served.

On Linux it speaks the kernel's FUSE protocol itself (:mod:`kbrowse.fuse.kernel`); elsewhere, or
with ``transport="libfuse"``, it runs on libfuse2 through fusepy (:mod:`kbrowse.fuse.libfuse`).

Why it is faster than `restic mount`:
- snapshot content never changes, so every open keeps the kernel's page cache (FOPEN_KEEP_CACHE)
  and attributes and names are cached by the kernel for a day: a second read of a file never
  reaches this process;
- a directory page carries its entries' attributes (READDIRPLUS, kernel transport), so `ls -l`,
  `find` and `du` send no lookup per file;
- sequential reads start fetching the next blobs in a thread pool while the current one is
  served, and several requests are served at once (decryption releases the GIL);
- directories are read in pages at the offsets the kernel asks for, and paths resolve through a
  cache of entries and a per-tree name index, so a lookup never scans a directory.

Paths are latin-1 text, which maps every byte to one character: names and link targets that
are not UTF-8 pass through unchanged.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import stat
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from kbrowse.fuse.tree import (
    DIRS,
    Entry,
    LazyDir,
    LazySnapshot,
    SnapEntry,
    TextFile,
    VDir,
    VLink,
)
from mover.errors import RepoError, WrongPassword
from mover.view import SnapshotView
from mover.view.node import NODE_IFMT, Node, posix_perm_from_go

CACHE_SECONDS = 86400  # kernel caching of attributes, names and missing names
READAHEAD_BYTES = 16 * 1024 * 1024  # how far sequential readers are served ahead
SEQUENTIAL_SLACK = 1024 * 1024  # the kernel's parallel read-ahead requests arrive a little out of order
PATH_CACHE = 65536  # resolved paths kept
RELOAD_SECONDS = 5.0  # a repository's snapshot list is checked at most this often
VIRTUAL_SECONDS = 1  # kernel caching of names in directories that change when snapshots do
INDEX_CACHE_NODES = 400_000  # names kept in per-directory indexes, summed over directories

_ENC = "latin-1"
_T = TypeVar("_T")


def _ino(*parts: bytes) -> int:
    h = hashlib.blake2b(digest_size=8)
    for p in parts:
        h.update(len(p).to_bytes(4, "little"))
        h.update(p)
    return int.from_bytes(h.digest(), "little") | 2  # never 0 (no inode) or 1 (libfuse's root)


def node_ino(snap_id: bytes, path: bytes, node: Node) -> int:
    """Stable inode number: hard links share (snapshot, device, inode), anything else is its path
    in the snapshot, so the same file seen under snapshots/ and ids/ keeps one number."""
    if node.links > 1 and node.type != "dir" and node.inode:
        return _ino(snap_id, node.device_id.to_bytes(8, "little"), node.inode.to_bytes(8, "little"))
    return _ino(snap_id, path)


def node_stat(snap_id: bytes, path: bytes, node: Node) -> dict:
    size = node.size if node.type == "file" else 0
    if node.type == "symlink":
        size = len(node.linktarget.encode("utf-8", "surrogateescape"))
    return {
        "st_ino": node_ino(snap_id, path, node),
        "st_mode": NODE_IFMT.get(node.type, stat.S_IFREG) | posix_perm_from_go(node.mode),
        # a directory's stored link count, or 1 = "unknown" (find/du then stat every child)
        "st_nlink": node.links or 1,
        "st_uid": node.uid, "st_gid": node.gid,
        "st_rdev": node.device if node.type in ("dev", "chardev") else 0,
        "st_size": size,
        "st_blocks": (size + 511) // 512 if node.type == "file" else 0,
        "st_atime": node.atime, "st_mtime": node.mtime, "st_ctime": node.ctime,
    }


class _FSError(OSError):
    """An errno for the kernel; not worth a log line (a missing name, a write)."""


def _error(code: int) -> _FSError:
    return _FSError(code, os.strerror(code))


@dataclass
class _File:
    entry: SnapEntry | TextFile
    next_offset: int = 0  # where a sequential reader reads next
    ahead: int = 0  # bytes before this offset have been handed to read-ahead
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Dir:
    path: str
    entry: Entry
    items: list  # list[Node] for a snapshot directory, list[(name, Entry)] for a virtual one


class SnapshotFS:
    """fusepy's operations (times in integer nanoseconds), which the kernel transport calls
    the same way; ``readdir_plus`` gives whole attributes where they cost nothing."""

    use_ns = True

    def __init__(self, view: SnapshotView | None, root: Entry, *,
                 on_ready: Callable[[], None] | None = None,
                 reload: Callable[[], Entry | None] | None = None) -> None:
        """``view`` reads the snapshot entries that do not name their own (None: all do).
        ``reload`` gives a new root when the snapshot list has changed (None: unchanged); it
        is asked when a virtual directory is listed or a name is missing, at most every
        RELOAD_SECONDS."""
        self.view = view
        self.root = root
        self._reload = reload
        self._reloaded = time.monotonic()
        self.on_ready = on_ready
        self.uid, self.gid = os.getuid(), os.getgid()
        self._lock = threading.Lock()
        self._paths: OrderedDict[str, Entry] = OrderedDict()
        self._indexes: OrderedDict[tuple[int, bytes], dict[bytes, Node]] = OrderedDict()
        self._index_nodes = 0
        self._handles: dict[int, _File | _Dir] = {}
        self._next_handle = itertools.count(1)

    # ---- lifecycle -----------------------------------------------------------------------------

    def init(self, path: str) -> None:
        # the index is needed by the first read of any tree or file; load it while the user types
        if self.view is not None:
            self.view.preload()
        if self.on_ready:
            self.on_ready()

    def destroy(self, path: str) -> None:
        pass  # the views belong to whoever mounted them, and are closed there

    def _maybe_reload(self) -> bool:
        """Take in new or removed snapshots; True if the tree changed."""
        now = time.monotonic()
        with self._lock:
            if self._reload is None or now - self._reloaded < RELOAD_SECONDS:
                return False
            self._reloaded = now
        try:
            root = self._reload()
        except Exception as e:  # the mount goes on with the list it has
            self._log(f"cannot reload the snapshot list: {e}")
            return False
        if root is None:
            return False
        with self._lock:
            self.root = root
            self._paths.clear()
        return True

    # ---- resolving paths -----------------------------------------------------------------------

    def _resolve(self, path: str) -> Entry:
        """The entry at a mount path, walking up to the nearest cached ancestor and back down."""
        names: list[str] = []
        p = path
        entry: Entry | None = None
        with self._lock:
            while p != "/" and (entry := self._paths.get(p)) is None:
                p, _, name = p.rpartition("/")
                p = p or "/"
                names.append(name)
            if entry is None:  # walked up to the root
                entry = self.root
            else:
                self._paths.move_to_end(p)
        for name in reversed(names):
            entry = self._child(entry, name.encode(_ENC), p)
            p = (p if p != "/" else "") + "/" + name
            with self._lock:
                self._paths[p] = entry
                if len(self._paths) > PATH_CACHE:
                    self._paths.popitem(last=False)
        return entry

    def _view(self, entry: SnapEntry) -> SnapshotView:
        view = entry.view if entry.view is not None else self.view
        assert view is not None
        return view

    def _load(self, path: str, what: str, load: Callable[[], _T]) -> _T:
        """A lazy entry's value; a failure (bucket, repository, password) is an error of this
        path only: EACCES for a wrong password, else EIO, with a log line."""
        try:
            return load()
        except _FSError:
            raise
        except Exception as e:  # the mount must stay up whatever a backend does
            self._log(f"{_show(path)}: cannot {what}: {e}")
            code = errno.EACCES if isinstance(e, WrongPassword) else errno.EIO
            raise _error(code) from None

    def _children(self, entry: VDir | LazyDir, path: str) -> dict[bytes, Entry]:
        if isinstance(entry, VDir):
            return entry.children
        return self._load(path, "list directory", lambda: entry.children)

    def _enter(self, entry: LazySnapshot, path: str) -> SnapEntry:
        return self._load(path, "open the volume's snapshot", entry.root)

    def _mtime(self, entry: LazyDir | LazySnapshot | TextFile, path: str) -> int:
        return self._load(path, "read its time", lambda: entry.mtime)

    def _child(self, entry: Entry, name: bytes, path: str) -> Entry:
        """The child ``name`` of ``entry``, the directory at ``path``."""
        if isinstance(entry, LazySnapshot):
            entry = self._enter(entry, path)
        if isinstance(entry, DIRS):
            child = self._children(entry, path).get(name)
            if isinstance(child, LazySnapshot) and child.device:  # a file: its size is needed now
                child = self._enter(child, f"{path.rstrip('/')}/{name.decode(_ENC)}")
        elif isinstance(entry, SnapEntry) and entry.node.type == "dir":
            node = self._index(entry, path).get(name)
            child = None if node is None else SnapEntry(entry.snap, node, entry.path + b"/" + name,
                                                        entry.view)
        else:
            raise _error(errno.ENOTDIR)
        if child is None:
            raise _error(errno.ENOENT)
        return child

    def _list(self, entry: SnapEntry, path: str) -> list[Node]:
        try:
            return self._view(entry).list_dir(entry.node)
        except RepoError as e:
            self._log(f"{_show(path)}: cannot read directory: {e}")
            raise _error(errno.EIO) from None

    def _index(self, entry: SnapEntry, path: str) -> dict[bytes, Node]:
        key = (id(self._view(entry)), entry.node.subtree or b"")
        with self._lock:
            index = self._indexes.get(key)
            if index is not None:
                self._indexes.move_to_end(key)
                return index
        index = {n.name_bytes: n for n in self._list(entry, path)}
        with self._lock:
            if key not in self._indexes:
                self._indexes[key] = index
                self._index_nodes += len(index)
                while self._index_nodes > INDEX_CACHE_NODES and len(self._indexes) > 1:
                    _, old = self._indexes.popitem(last=False)
                    self._index_nodes -= len(old)
        return index

    # ---- attributes ----------------------------------------------------------------------------

    def _stat(self, entry: Entry, path: str) -> dict:
        """fusepy's stat dict; "cache_seconds", where present, tells the kernel transport to
        keep the name and attributes for that long only (they change when snapshots do)."""
        if isinstance(entry, SnapEntry):
            st = node_stat(entry.snap.id, entry.path, entry.node)
            if self._reload is not None and not entry.path:  # a snapshot's name in a listing
                st["cache_seconds"] = VIRTUAL_SECONDS
            return st
        mtime = entry.mtime if isinstance(entry, (VDir, VLink)) else self._mtime(entry, path)
        virtual = {"st_ino": _ino(b"/", path.encode(_ENC)), "st_nlink": 1, "st_uid": self.uid,
                   "st_gid": self.gid, "st_atime": mtime, "st_mtime": mtime, "st_ctime": mtime}
        if self._reload is not None:
            virtual["cache_seconds"] = VIRTUAL_SECONDS
        if isinstance(entry, (VDir, LazyDir, LazySnapshot)):
            return virtual | {"st_mode": stat.S_IFDIR | 0o555, "st_size": 0}
        if isinstance(entry, TextFile):
            size = len(self._load(path, "render it", lambda: entry.data))
            return virtual | {"st_mode": stat.S_IFREG | 0o444, "st_size": size,
                              "st_blocks": (size + 511) // 512}
        return virtual | {"st_mode": stat.S_IFLNK | 0o777, "st_size": len(entry.target)}

    def _dirent(self, entry: LazyDir | LazySnapshot | TextFile, path: str) -> dict:
        """What readdir tells about a lazy child of a virtual directory: inode and type, without
        loading it (listing a directory of YAML files renders none of them)."""
        file = isinstance(entry, TextFile) or isinstance(entry, LazySnapshot) and entry.device
        mode = stat.S_IFREG if file else stat.S_IFDIR
        return {"st_ino": _ino(b"/", path.encode(_ENC)), "st_mode": mode}

    def getattr(self, path: str, fh: object = None) -> dict:
        try:
            return self._stat(self._resolve(path), path)
        except _FSError as e:
            # a snapshot asked for by name right after its backup: look again once
            if e.errno != errno.ENOENT or not self._maybe_reload():
                raise
        return self._stat(self._resolve(path), path)

    def readlink(self, path: str) -> str:
        entry = self._resolve(path)
        if isinstance(entry, VLink):
            return entry.target.decode(_ENC)
        if isinstance(entry, SnapEntry) and entry.node.type == "symlink":
            return entry.node.linktarget.encode("utf-8", "surrogateescape").decode(_ENC)
        raise _error(errno.EINVAL)

    def _xattrs(self, path: str) -> dict[str, bytes]:
        # only user.*: security.* and system.* would be interpreted by the kernel of this host
        entry = self._resolve(path)
        if not isinstance(entry, SnapEntry):
            return {}
        return {n.encode("utf-8", "surrogateescape").decode(_ENC): v
                for n, v in entry.node.xattrs if n.startswith("user.")}

    def listxattr(self, path: str) -> list[str]:
        return list(self._xattrs(path))

    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        value = self._xattrs(path).get(name)
        if value is None:
            raise _error(errno.ENODATA)
        return value

    def statfs(self, path: str) -> dict:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255}

    # ---- directories ---------------------------------------------------------------------------

    def opendir(self, path: str) -> int:
        entry = self._resolve(path)
        if isinstance(entry, VDir) and self._maybe_reload():
            entry = self._resolve(path)
        if isinstance(entry, LazySnapshot):
            entry = self._enter(entry, path)
        if isinstance(entry, DIRS):
            items: list = list(self._children(entry, path).items())
        elif isinstance(entry, SnapEntry) and entry.node.type == "dir":
            items = self._list(entry, path)
        else:
            raise _error(errno.ENOTDIR)
        return self._add_handle(_Dir(path, entry, items))

    def readdir_plus(self, path: str, fh: int, offset: int = 0
                     ) -> Iterator[tuple[str, dict, int, bool]]:
        """Entries from ``offset`` on: (name, attributes, offset of the next, whether the
        attributes are whole). The kernel stops asking when its buffer is full and comes back
        with that offset, so a huge directory is never turned into dirents all at once.
        Attributes are whole for snapshot nodes and fixed virtual entries; for an entry that
        would have to be loaded (a bucket's backup, a YAML file's size) only inode and type."""
        d = self._handles[fh]
        assert isinstance(d, _Dir)
        base = d.path.rstrip("/")
        if offset == 0:
            yield ".", self.getattr(d.path), 1, False
        if offset <= 1:
            yield "..", self.getattr(d.path.rpartition("/")[0] or "/"), 2, False
        items = d.items
        if isinstance(d.entry, SnapEntry):
            snap_id, parent = d.entry.snap.id, d.entry.path + b"/"
            for i in range(max(offset - 2, 0), len(items)):
                node = items[i]
                name = node.name_bytes
                yield name.decode(_ENC), node_stat(snap_id, parent + name, node), i + 3, True
            return
        for i in range(max(offset - 2, 0), len(items)):
            name, child = items[i]
            child_path = f"{base}/{name.decode(_ENC)}"
            if isinstance(child, (SnapEntry, VDir, VLink)):
                yield name.decode(_ENC), self._stat(child, child_path), i + 3, True
            else:
                yield name.decode(_ENC), self._dirent(child, child_path), i + 3, False

    def releasedir(self, path: str, fh: int) -> int:
        self._drop_handle(fh)
        return 0

    # ---- files ---------------------------------------------------------------------------------

    def open(self, path: str, flags: int) -> int:
        """A handle for reading; the caller keeps the kernel's page cache across opens."""
        if flags & os.O_ACCMODE != os.O_RDONLY:
            raise _error(errno.EROFS)
        entry = self._resolve(path)
        if isinstance(entry, TextFile):
            self._load(path, "render it", lambda: entry.data)
        elif not isinstance(entry, SnapEntry) or entry.node.type != "file":
            raise _error(errno.EACCES)
        return self._add_handle(_File(entry))

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        f = self._handles[fh]
        assert isinstance(f, _File)
        if isinstance(f.entry, TextFile):
            return f.entry.data[offset:offset + size]
        try:
            data = self._view(f.entry).read(f.entry.node, offset, size)
        except Exception as e:  # damaged or missing data, or a failing backend: one read fails
            self._log(f"{_show(path)}: read of {size} bytes at offset {offset} failed: {e}")
            raise _error(errno.EIO) from None
        self._read_ahead(f, offset, offset + len(data))
        return data

    def _read_ahead(self, f: _File, start: int, end: int) -> None:
        assert isinstance(f.entry, SnapEntry)
        node = f.entry.node
        with f.lock:
            sequential = abs(start - f.next_offset) <= SEQUENTIAL_SLACK
            f.next_offset = max(f.next_offset, end) if sequential else end
            if not sequential:
                f.ahead = 0  # a seek: read-ahead starts over wherever the reader goes on
                return
            if end >= node.size:
                return
            lo, hi = max(end, f.ahead), end + READAHEAD_BYTES
            if lo >= hi:
                return
            f.ahead = hi
        self._view(f.entry).prefetch(node, lo, hi - lo)

    def release(self, path: str, fh: int) -> int:
        self._drop_handle(fh)
        return 0

    # ---- handles and errors --------------------------------------------------------------------

    def _add_handle(self, h: _File | _Dir) -> int:
        n = next(self._next_handle)
        with self._lock:
            self._handles[n] = h
        return n

    def _drop_handle(self, n: int) -> None:
        with self._lock:
            self._handles.pop(n, None)

    def _log(self, msg: str) -> None:
        log_error(msg)

    # ---- a read-only filesystem ----------------------------------------------------------------

    def _read_only(self, *args: object) -> int:
        raise _error(errno.EROFS)

    chmod = chown = create = link = mkdir = mknod = rename = rmdir = symlink = _read_only
    truncate = unlink = utimens = write = setxattr = removexattr = _read_only


def _show(path: str) -> str:
    return path.encode(_ENC).decode("utf-8", "backslashreplace")


def log_error(msg: str) -> None:
    """One line on stderr: a served mount's errors (a foreground mount's terminal sees them)."""
    sys.stderr.write(f"kbrowse mount: error: {msg}\n")
    sys.stderr.flush()


def default_transport() -> str:
    """The kernel protocol where it exists (Linux), libfuse (macFUSE, FreeBSD) elsewhere."""
    return "kernel" if sys.platform.startswith("linux") else "libfuse"


def serve(ops: SnapshotFS, mountpoint: str, *, allow_other: bool = False,
          transport: str | None = None) -> None:
    """Mount and serve until unmounted or SIGINT/SIGTERM/SIGHUP (which unmount)."""
    options = ["ro", "fsname=kbrowse", "subtype=kbrowse"]
    if allow_other:
        # other users see the mount, so the kernel must enforce the snapshot's permissions
        options += ["allow_other", "default_permissions"]
    if (transport or default_transport()) == "kernel":
        from kbrowse.fuse import kernel

        kernel.serve(ops, mountpoint, options, cache_seconds=CACHE_SECONDS, log=log_error)
    else:
        from kbrowse.fuse import libfuse

        libfuse.serve(ops, mountpoint, options, cache_seconds=CACHE_SECONDS)
