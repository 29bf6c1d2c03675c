"""File trees -> snapshot: walk, chunk, deduplicate, store, in a parallel pipeline.

The walk runs in the calling thread and plans every directory; file contents are read and
chunked by a pool of file workers, and each chunk's compression and encryption run in a blob
pool, so reading, hashing, compressing, encrypting and uploading overlap. Trees are saved
bottom-up once their entries are known, then the index, then the snapshot: a crash at any point
leaves only unreferenced packs behind.
"""

from __future__ import annotations

import errno
import grp
import hashlib
import os
import pwd
import stat as st
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from mover import chunker
from mover.progress import Counters
from mover.repo import identity
from mover.repo.blob import BlobType
from mover.repo.errors import RepoError
from mover.repo.repository import Repository
from mover.repo.snapshot import Snapshot
from mover.repo.tree import Node, go_mode_from_posix

PROGRAM_VERSION = "mover 0.1.0"
_O_NOATIME = getattr(os, "O_NOATIME", 0)


class Cancelled(RepoError):
    exit_code = 130


@dataclass
class BackupStats:
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    dirs: int = 0
    bytes_read: int = 0
    data_blobs_added: int = 0
    data_added: int = 0  # plaintext bytes of new blobs
    warnings: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **kw: int) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)


@dataclass
class BackupResult:
    snapshot: Snapshot
    stats: BackupStats
    parent: Snapshot | None


@dataclass
class _DirPlan:
    """A directory being backed up: its own node and its children (nodes or pending files)."""

    node: Node
    children: list["Node | Future[Node | None] | _DirPlan"] = field(default_factory=list)


def _type_of(mode: int) -> str:
    fmt = st.S_IFMT(mode)
    return {st.S_IFREG: "file", st.S_IFDIR: "dir", st.S_IFLNK: "symlink", st.S_IFBLK: "dev",
            st.S_IFCHR: "chardev", st.S_IFIFO: "fifo", st.S_IFSOCK: "socket"}.get(fmt, "irregular")


class _Names:
    """uid/gid -> name lookups, cached (one passwd lookup per owner, not per file)."""

    def __init__(self) -> None:
        self._users: dict[int, str] = {}
        self._groups: dict[int, str] = {}

    def user(self, uid: int) -> str:
        if uid not in self._users:
            try:
                self._users[uid] = pwd.getpwuid(uid).pw_name
            except KeyError:
                self._users[uid] = ""
        return self._users[uid]

    def group(self, gid: int) -> str:
        if gid not in self._groups:
            try:
                self._groups[gid] = grp.getgrgid(gid).gr_name
            except KeyError:
                self._groups[gid] = ""
        return self._groups[gid]


def read_xattrs(path: str) -> list[tuple[str, bytes]]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []  # filesystem without xattrs, or a symlink where the kernel refuses them
    out = []
    for name in names:  # kernel order, as restic 0.14 keeps it: trees stay byte-identical
        try:
            out.append((name, os.getxattr(path, name, follow_symlinks=False)))
        except OSError:
            continue
    return out


def file_unchanged(node: Node | None, s: os.stat_result) -> bool:
    """restic's rule: same type, size, mtime, ctime and inode means the content is the same."""
    return (node is not None and node.type == "file" and node.content is not None
            and node.size == s.st_size and node.mtime == s.st_mtime_ns
            and node.ctime == s.st_ctime_ns and node.inode == s.st_ino)


class Archiver:
    def __init__(self, repo: Repository, counters: Counters | None = None, *,
                 workers: int | None = None, warn: Callable[[str], None] | None = None,
                 cancel: threading.Event | None = None, with_atime: bool = False) -> None:
        self.repo = repo
        # Like restic, record atime = mtime unless asked: reading a file moves its atime, and a
        # moving atime would make every directory's tree new on every backup.
        self.with_atime = with_atime
        self.counters = counters or Counters()
        cpus = os.cpu_count() or 2
        self.file_workers = workers or max(2, cpus)
        self.blob_workers = max(2, cpus)
        self.stats = BackupStats()
        self._warn_cb = warn
        self.cancel = cancel or threading.Event()
        self._names = _Names()
        # bounded hand-off so a huge tree or a fast reader never queues unbounded work
        self._file_slots = threading.BoundedSemaphore(self.file_workers * 4)
        self._blob_slots = threading.BoundedSemaphore(self.blob_workers * 2)

    # ---- public ---------------------------------------------------------------------------

    def backup(self, paths: list[str], *, host: str | None = None, tags: list[str] | None = None,
               parent: Snapshot | None = None, when_ns: int | None = None) -> BackupResult:
        started = when_ns or time.time_ns()
        targets = self._existing_targets(paths)
        scanner = threading.Thread(target=self._scan, args=(targets,), name="scan", daemon=True)
        scanner.start()
        file_pool = ThreadPoolExecutor(self.file_workers, thread_name_prefix="file")
        blob_pool = ThreadPoolExecutor(self.blob_workers, thread_name_prefix="blob")
        try:
            root = self._plan_root(targets, parent, file_pool, blob_pool)
            tree_id = self._finish(root)
            self.repo.flush()
        except BaseException:
            self.cancel.set()
            file_pool.shutdown(wait=True, cancel_futures=True)
            blob_pool.shutdown(wait=True, cancel_futures=True)
            # keep what is already packed and indexed; nothing refers to it yet, so a later
            # backup reuses it and restic's check only calls the packs "unreferenced"
            self.repo.abandon_pending()
            raise
        finally:
            file_pool.shutdown(wait=True)
            blob_pool.shutdown(wait=True)
            self.counters.scanning = False
        snap = Snapshot(time=started, tree=tree_id, paths=[os.path.abspath(p) for p in targets],
                        hostname=host or identity.hostname(), username=identity.username(),
                        uid=os.getuid(), gid=os.getgid(), tags=list(tags or []),
                        parent=parent.id if parent else None, program_version=PROGRAM_VERSION)
        self.repo.save_snapshot(snap)
        return BackupResult(snap, self.stats, parent)

    # ---- planning -------------------------------------------------------------------------

    def _existing_targets(self, paths: list[str]) -> list[str]:
        if not paths:
            raise RepoError("nothing to back up: give at least one path")
        found, missing = [], []
        for p in paths:
            try:
                os.lstat(p)
                found.append(p)
            except FileNotFoundError:
                missing.append(f"source path {p} does not exist")
            except OSError as e:
                missing.append(f"cannot access source path {p}: {e.strerror}")
        if not found:  # one error line, not a warning per path followed by the error
            raise RepoError(f"nothing to back up: {'; '.join(missing)}")
        for m in missing:
            self._warn(m)
        if len({os.path.abspath(p) for p in found}) != len(found):
            raise RepoError("the same source path is given twice")
        return found

    def _warn(self, msg: str) -> None:
        self.stats.warnings.append(msg)
        self.counters.error()
        if self._warn_cb:
            self._warn_cb(msg)

    def _plan_root(self, targets: list[str], parent: Snapshot | None, fp, bp) -> _DirPlan:
        """The snapshot root: '.' puts a directory's entries at the root (as Velero does);
        other paths keep their full path below the root, like restic."""
        root = _DirPlan(Node(name="", type="dir"))
        parent_root = parent.tree if parent else None
        for t in targets:
            if os.path.abspath(t) == os.path.abspath(os.curdir) and os.path.isdir(t):
                s = os.lstat(t)
                root.node = self._node(t, "", s)
                self._plan_dir_entries(root, t, parent_root, fp, bp)
                continue
            parts = [p for p in os.path.abspath(t).split(os.sep) if p]
            plan, ptree = root, parent_root
            for depth, part in enumerate(parts):
                path = os.sep + os.path.join(*parts[:depth + 1])
                pnode = self._parent_child(ptree, part)
                existing = next((c for c in plan.children if isinstance(c, _DirPlan) and c.node.name == part), None)
                if depth == len(parts) - 1:
                    plan.children.append(self._plan_entry(path, part, pnode, fp, bp))
                    break
                if existing is None:
                    existing = _DirPlan(self._node(path, part, os.lstat(path)))
                    plan.children.append(existing)
                plan = existing
                ptree = pnode.subtree if pnode is not None and pnode.type == "dir" else None
        return root

    def _parent_child(self, parent_tree: bytes | None, name: str) -> Node | None:
        if parent_tree is None:
            return None
        try:
            for n in self.repo.load_tree(parent_tree):
                if n.name == name:
                    return n
        except RepoError:
            return None  # a damaged parent only costs us re-reading files
        return None

    def _plan_entry(self, path: str, name: str, pnode: Node | None, fp, bp):
        try:
            s = os.lstat(path)
        except OSError as e:
            self._warn(f"cannot stat {path}: {e.strerror}")
            return None
        if st.S_ISDIR(s.st_mode):
            plan = _DirPlan(self._node(path, name, s))
            self._plan_dir_entries(plan, path, pnode.subtree if pnode is not None and pnode.type == "dir" else None, fp, bp)
            return plan
        node = self._node(path, name, s)
        if node.type != "file":
            self.counters.done(files=1)
            return node
        if file_unchanged(pnode, s) and all(self.repo.index.has(BlobType.DATA, b) for b in pnode.content):
            node.content = pnode.content
            self.stats.add(files_unmodified=1)
            self.counters.done(files=1, nbytes=s.st_size)
            return node
        self._file_slots.acquire()
        fut = fp.submit(self._read_file, path, node, pnode is not None, bp)
        fut.add_done_callback(lambda _f: self._file_slots.release())
        return fut

    def _plan_dir_entries(self, plan: _DirPlan, path: str, parent_tree: bytes | None, fp, bp) -> None:
        self.stats.add(dirs=1)
        try:
            with os.scandir(path) as it:
                names = sorted(e.name for e in it)
        except OSError as e:
            self._warn(f"cannot read directory {path}: {e.strerror}")
            return
        parents: dict[str, Node] = {}
        if parent_tree is not None:
            try:
                parents = {n.name: n for n in self.repo.load_tree(parent_tree)}
            except RepoError:
                parents = {}
        for name in names:
            if self.cancel.is_set():
                raise Cancelled("backup cancelled")
            child = self._plan_entry(os.path.join(path, name), name, parents.get(name), fp, bp)
            if child is not None:
                plan.children.append(child)

    def _node(self, path: str, name: str, s: os.stat_result) -> Node:
        t = _type_of(s.st_mode)
        n = Node(name=name, type=t, mode=go_mode_from_posix(s.st_mode), mtime=s.st_mtime_ns,
                 atime=s.st_atime_ns if self.with_atime else s.st_mtime_ns, ctime=s.st_ctime_ns, uid=s.st_uid, gid=s.st_gid,
                 user=self._names.user(s.st_uid), group=self._names.group(s.st_gid),
                 inode=s.st_ino, device_id=s.st_dev)
        if t == "file":
            n.size = s.st_size
            n.links = s.st_nlink
            n.content = []
        elif t == "symlink":
            n.linktarget = os.readlink(path)
            n.links = s.st_nlink
        elif t in ("dev", "chardev"):
            n.device = s.st_rdev
            n.links = s.st_nlink
        n.xattrs = read_xattrs(path)
        return n

    # ---- file contents --------------------------------------------------------------------

    def _read_file(self, path: str, node: Node, had_parent: bool, bp) -> Node | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | _O_NOATIME)
        except PermissionError:
            if not _O_NOATIME:
                raise
            try:  # O_NOATIME needs ownership; fall back to a plain open
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError as e:
                self._warn(f"cannot read {path}: {e.strerror}; skipped")
                return None
        except OSError as e:
            self._warn(f"cannot read {path}: {e.strerror}; skipped")
            return None
        try:
            s = os.fstat(fd)
            if not st.S_ISREG(s.st_mode):
                self._warn(f"{path} changed type while being backed up; skipped")
                return None
            return self._store_content(fd, path, node, had_parent, bp)
        except OSError as e:
            self._warn(f"cannot read {path}: {e.strerror}; skipped")
            return None
        finally:
            os.close(fd)

    def _store_content(self, fd: int, path: str, node: Node, had_parent: bool, bp) -> Node:
        ids: list[bytes] = []
        pending: list[Future] = []
        size = 0
        carry = b""
        while True:
            if self.cancel.is_set():
                raise Cancelled("backup cancelled")
            data = os.read(fd, chunker.READ_SIZE)
            final = not data
            buf = carry + data if carry else data
            if buf:
                chunks, used = chunker.chunk_buffer(buf, final)
                for c in chunks:
                    blob = bytes(c)
                    bid = hashlib.sha256(blob).digest()
                    ids.append(bid)
                    size += len(blob)
                    self._blob_slots.acquire()
                    f = bp.submit(self._save_chunk, blob, bid)
                    f.add_done_callback(lambda _f: self._blob_slots.release())
                    pending.append(f)
                carry = buf[used:]
                self.counters.done(nbytes=len(data))
            if final:
                break
        for f in pending:
            f.result()
        self.stats.add(bytes_read=size)
        if size != node.size:
            self.counters.done(nbytes=0)
            node.size = size  # the file grew or shrank while read: record what we stored
        node.content = ids
        self.stats.add(**({"files_changed": 1} if had_parent else {"files_new": 1}))
        self.counters.done(files=1)
        return node

    def _save_chunk(self, blob: bytes, bid: bytes) -> None:
        _id, new = self.repo.save_blob(BlobType.DATA, blob, bid)
        if new:
            self.stats.add(data_blobs_added=1, data_added=len(blob))

    # ---- trees ----------------------------------------------------------------------------

    def _finish(self, plan: _DirPlan) -> bytes:
        nodes: list[Node] = []
        for c in plan.children:
            if isinstance(c, _DirPlan):
                c.node.subtree = self._finish(c)
                nodes.append(c.node)
            elif isinstance(c, Future):
                n = c.result()
                if n is not None:
                    nodes.append(n)
            else:
                nodes.append(c)
        return self.repo.save_tree(nodes)

    # ---- totals for the progress bar -------------------------------------------------------

    def _scan(self, targets: list[str]) -> None:
        try:
            for t in targets:
                for dirpath, _dirs, files in os.walk(t):
                    if self.cancel.is_set():
                        return
                    n, b = 0, 0
                    for f in files:
                        try:
                            n += 1
                            b += os.lstat(os.path.join(dirpath, f)).st_size
                        except OSError:
                            continue
                    self.counters.add_total(files=n, nbytes=b)
                if not os.path.isdir(t):
                    self.counters.add_total(files=1, nbytes=os.lstat(t).st_size)
        finally:
            self.counters.scanning = False


def find_parent(repo: Repository, paths: list[str], host: str) -> Snapshot | None:
    """restic's default parent: the latest snapshot with the same host and the same paths."""
    want = sorted(os.path.abspath(p) for p in paths)
    cands = [s for s in repo.snapshots() if s.hostname == host and sorted(s.paths) == want]
    return max(cands, key=lambda s: (s.time, s.id)) if cands else None
