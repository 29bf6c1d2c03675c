"""File trees -> snapshot: walk, chunk, deduplicate, store, in a parallel pipeline.

The walk runs in the calling thread and plans every directory; file contents are read and
chunked by a pool of file workers, and each chunk's compression and encryption run in a blob
pool, so reading, hashing, compressing, encrypting and uploading overlap. Trees are saved
bottom-up once their entries are known, then the index, then the snapshot: a crash at any point
leaves only unreferenced packs behind.
"""

from __future__ import annotations

import functools
import grp
import hashlib
import mmap
import os
import pwd
import stat as st
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from mover.archiver import chunker
from mover.archiver.prescan import Prescan, read_xattrs
from mover.errors import RepoError
from mover.progress import Counters
from mover.repo import identity, malloc
from mover.repo.blob import BlobType
from mover.repo.repository import Repository
from mover.repo.tree import stored_nodes
from mover.view.node import NODE_IFMT, Node, go_mode_from_posix
from mover.view.snapshot import Snapshot

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


@dataclass
class BackupResult:
    snapshot: Snapshot
    stats: BackupStats
    parent: Snapshot | None


@dataclass
class _DirPlan:
    """A directory being backed up: its own node and its children (nodes or pending files)."""

    node: Node
    children: list[Node | Future[Node | None] | _DirPlan | _Small] = field(default_factory=list)
    # the same directory in the parent snapshot: when every entry comes out equal, its tree is
    # reused as it is, with no encoding, hashing or index lookup per entry
    parent_tree: bytes | None = None
    parent_nodes: list[Node] | None = None
    # the parent tree's JSON, when it was read for this walk: a tree saved anew writes the
    # nodes it keeps from the parent (by identity) as they are stored there
    parent_json: bytes | None = None
    tree: bytes | None = None  # once saved (its children are dropped then)
    stored_upto: int = 0  # its first child not seen stored yet (see _stored)


_TYPES = {ifmt: t for t, ifmt in NODE_IFMT.items()}
_go_mode = functools.cache(go_mode_from_posix)  # a source has few distinct modes


def _name_key(n: Node) -> bytes:
    return n.name_bytes  # trees are sorted bytewise


class _Batch:
    """Small files read, hashed, compressed and sealed one after another by one file worker:
    a file under the minimum chunk size is a single blob, and a task (a future, a semaphore,
    a wake-up) per file or per blob cost more than the file itself."""

    __slots__ = ("items", "nbytes", "future")

    def __init__(self) -> None:
        self.items: list[tuple[str, Node, bool]] = []
        self.nbytes = 0
        self.future: Future | None = None


class _Small:
    """A directory's child that is read as part of a :class:`_Batch`; a file that turns out
    unreadable gets ``content = None`` and is left out of the tree, as a skipped file is."""

    __slots__ = ("batch", "node")

    def __init__(self, batch: _Batch, node: Node) -> None:
        self.batch = batch
        self.node = node


SMALL_BATCH_FILES = 64
SMALL_BATCH_BYTES = 2 * 1024 * 1024
# Entries the walk may hold in directories whose tree is not saved yet. A directory's tree is
# saved as soon as its contents are stored, and when more than this many entries wait, the walk
# waits for the oldest directory, so memory stays bounded however many files the source holds
# (with every node kept until the end, 200,000 files took the backup to 440 MiB).
MAX_UNFINISHED_ENTRIES = 20_000
# Walked directories still waiting for their contents that the walk looks past, each time it
# has walked one more, for later ones whose trees it can save already.
LOOK_PAST_WAITING = 8


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


def file_unchanged(node: Node | None, s: os.stat_result, atime: int | None = None) -> bool:
    """restic's rule: same type, size, mtime, ctime and inode means the content is the same
    (and, if given, the node's atime is ``atime``)."""
    return (node is not None and node.type == "file" and node.content is not None
            and node.size == s.st_size and node.inode == s.st_ino
            and node.times_equal(s.st_mtime_ns, s.st_ctime_ns, atime))


class Archiver:
    def __init__(self, repo: Repository, counters: Counters | None = None, *,
                 workers: int | None = None, warn: Callable[[str], None] | None = None,
                 cancel: threading.Event | None = None, with_atime: bool = False,
                 prescan: Prescan | None = None) -> None:
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
        self._batch = _Batch()
        self._unfinished: deque[_DirPlan] = deque()  # walked, tree not saved yet, in post-order
        self._unfinished_entries = 0
        # Small files go to their own worker(s): their work is mostly Python, holding the GIL,
        # while a big file's is hashing, compressing and encrypting without it. Separate queues
        # let the two overlap instead of the small files waiting behind the big ones.
        self.small_workers = min(2, self.file_workers)
        self._small_slots = threading.BoundedSemaphore(self.small_workers * 4)
        self._small_pool: ThreadPoolExecutor | None = None
        self._prescan = prescan

    # ---- public ---------------------------------------------------------------------------

    def backup(self, paths: list[str], *, host: str | None = None, tags: list[str] | None = None,
               parent: Snapshot | None = None, when_ns: int | None = None,
               contents_at_root: bool = False) -> BackupResult:
        """``contents_at_root``: a directory's entries go at the snapshot root, as backing up
        '.' from inside it does (what Velero's node agent does for a volume), without a chdir."""
        started = when_ns or time.time_ns()
        malloc.map_large_buffers()
        targets = self._existing_targets(paths)
        if self._prescan is not None:
            self._prescan.attach(self.counters)  # its totals replace the scan thread's
        else:
            scanner = threading.Thread(target=self._scan, args=(targets,), name="scan", daemon=True)
            scanner.start()
        return self._run(targets, lambda fp, bp: self._plan_root(targets, parent, fp, bp, contents_at_root),
                         started, host, tags, parent)

    def backup_device(self, device: str, name: str, *, host: str | None = None, tags: list[str] | None = None,
                      parent: Snapshot | None = None) -> BackupResult:
        """A block volume, as Velero's data mover stores one: the bytes of ``device`` (a block
        device, or a regular file standing in for one) as the one regular file ``name`` at the
        snapshot root. A device's metadata says nothing of its content, so it is read whole
        every time; its chunks deduplicate, so an unchanged device adds no data, and its file
        keeps the parent's node (times included) when the content is the parent's, so that
        the tree is the parent's too."""
        started = time.time_ns()
        malloc.map_large_buffers()
        return self._run([device], lambda fp, bp: self._plan_device(device, name, parent, started, bp),
                         started, host, tags, parent)

    def _run(self, targets: list[str], plan: Callable[[ThreadPoolExecutor, ThreadPoolExecutor], _DirPlan],
             started: int, host: str | None, tags: list[str] | None, parent: Snapshot | None) -> BackupResult:
        """Plan the snapshot root with ``plan(file_pool, blob_pool)``, store it and save the snapshot."""
        file_pool = ThreadPoolExecutor(self.file_workers, thread_name_prefix="file")
        blob_pool = ThreadPoolExecutor(self.blob_workers, thread_name_prefix="blob")
        self._small_pool = small_pool = ThreadPoolExecutor(self.small_workers, thread_name_prefix="small")
        try:
            root = plan(file_pool, blob_pool)
            self._submit_batch(file_pool, blob_pool)
            tree_id = self._finish(root)  # and every directory the walk left unsaved
            self._unfinished.clear()
            self.repo.flush()
        except BaseException:
            self.cancel.set()
            small_pool.shutdown(wait=True, cancel_futures=True)
            file_pool.shutdown(wait=True, cancel_futures=True)
            blob_pool.shutdown(wait=True, cancel_futures=True)
            # keep what is already packed and indexed; nothing refers to it yet, so a later
            # backup reuses it and restic's check only calls the packs "unreferenced"
            self.repo.abandon_pending()
            raise
        finally:
            small_pool.shutdown(wait=True)
            file_pool.shutdown(wait=True)
            blob_pool.shutdown(wait=True)
            if self._prescan is not None:
                self._prescan.stop()
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

    def _plan_root(self, targets: list[str], parent: Snapshot | None, fp, bp,
                   contents_at_root: bool = False) -> _DirPlan:
        """The snapshot root: '.' puts a directory's entries at the root (as Velero does);
        other paths keep their full path below the root, like restic."""
        root = _DirPlan(Node(name="", type="dir"))
        parent_root = parent.tree if parent else None
        for t in targets:
            at_root = contents_at_root or os.path.abspath(t) == os.path.abspath(os.curdir)
            if at_root and os.path.isdir(t):
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
                    target = self._lstat(path)
                    if target is not None:
                        plan.children.append(self._plan_entry(path, part, pnode, fp, bp, target))
                    break
                if existing is None:
                    existing = _DirPlan(self._node(path, part, os.lstat(path)))
                    plan.children.append(existing)
                plan = existing
                ptree = pnode.subtree if pnode is not None and pnode.type == "dir" else None
        return root

    def _plan_device(self, device: str, name: str, parent: Snapshot | None, started: int, bp) -> _DirPlan:
        """The root holding the device's one file, its content stored here and now."""
        root = _DirPlan(Node(name="", type="dir"))
        if parent is not None:
            try:
                root.parent_nodes, root.parent_tree = self.repo.load_tree(parent.tree), parent.tree
            except RepoError:
                pass  # a damaged parent only costs a new tree
        pnode = next((n for n in root.parent_nodes or () if n.name == name), None)
        try:
            fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise RepoError(f"cannot open the device {device}: {e.strerror}") from None
        try:
            s = os.fstat(fd)
            if not (st.S_ISBLK(s.st_mode) or st.S_ISREG(s.st_mode)):
                raise RepoError(f"{device} is not a block device: back its volume up as a file system")
            # A block device's st_size is 0: its size is where its end is (what BLKGETSIZE64 says).
            size = os.lseek(fd, 0, os.SEEK_END)
            os.lseek(fd, 0, os.SEEK_SET)
            self.counters.add_total(files=1, nbytes=size)
            self.counters.scanning = False
            names = self._names
            node = Node(name, "file", go_mode_from_posix(st.S_IFREG | st.S_IMODE(s.st_mode)), started, started,
                        started, s.st_uid, s.st_gid, names.user(s.st_uid), names.group(s.st_gid), size=size, links=1,
                        content=[])
            self._store_content(fd, device, node, pnode is not None, bp)
        except OSError as e:
            raise RepoError(f"cannot read the device {device}: {e.strerror}") from None
        finally:
            os.close(fd)
        if pnode is not None:
            # a device has no times of its own: unchanged bytes keep the parent's node (and tree)
            stored = (node.mtime, node.atime, node.ctime)
            node.mtime, node.atime, node.ctime = pnode.mtime, pnode.atime, pnode.ctime
            if node == pnode:
                node = pnode
            else:
                node.mtime, node.atime, node.ctime = stored
        root.children.append(node)
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

    def _lstat(self, path: str) -> os.stat_result | None:
        try:
            return os.lstat(path)
        except OSError as e:
            self._warn(f"cannot stat {path}: {e.strerror}")
            return None

    def _plan_entry(self, path: str, name: str, pnode: Node | None, fp, bp, s: os.stat_result):
        """One entry of a directory, ``s`` its lstat."""
        if pnode is not None and self._same_file(pnode, s) and \
                self.repo.index.has_all(BlobType.DATA, pnode.content or ()):
            # the node this file would get is the parent's, field for field: keep that one, so
            # an unchanged file costs no Node and its directory's reuse check compares by
            # identity (restic's no-change backup does the same per file)
            self.stats.files_unmodified += 1  # only the walk counts these: no lock
            self.counters.done(files=1, nbytes=s.st_size)
            return pnode
        if st.S_ISDIR(s.st_mode):
            plan = _DirPlan(self._node(path, name, s, pnode))
            self._plan_dir_entries(plan, path, pnode.subtree if pnode is not None and pnode.type == "dir" else None, fp, bp)
            self._walked(plan, fp, bp)
            return plan
        node = self._node(path, name, s, pnode)
        if node.type != "file":
            self.counters.done(files=1)
            return node
        old = pnode.content if pnode is not None and file_unchanged(pnode, s) else None
        if old is not None and self.repo.index.has_all(BlobType.DATA, old):
            node.content = old
            self.stats.files_unmodified += 1  # only the walk counts these: no lock
            self.counters.done(files=1, nbytes=s.st_size)
            return node
        if s.st_size < chunker.MIN_SIZE:
            b = self._batch
            b.items.append((path, node, pnode is not None))
            b.nbytes += s.st_size
            if len(b.items) >= SMALL_BATCH_FILES or b.nbytes >= SMALL_BATCH_BYTES:
                self._submit_batch(fp, bp)
            return _Small(b, node)
        self._file_slots.acquire()
        fut = fp.submit(self._read_file, path, node, pnode is not None, bp)
        fut.add_done_callback(self._release_file_slot)
        return fut

    def _release_file_slot(self, _f: Future) -> None:
        self._file_slots.release()

    def _release_small_slot(self, _f: Future) -> None:
        self._small_slots.release()

    def _release_blob_slot(self, _f: Future) -> None:
        self._blob_slots.release()

    def _submit_batch(self, fp, bp) -> None:
        b, self._batch = self._batch, _Batch()
        if not b.items:
            return
        assert self._small_pool is not None  # made by backup() for the run
        self._small_slots.acquire()
        b.future = self._small_pool.submit(self._read_batch, b.items)
        b.future.add_done_callback(self._release_small_slot)

    def _read_batch(self, items: list[tuple[str, Node, bool]]) -> None:
        for path, node, had_parent in items:
            if self.cancel.is_set():
                raise Cancelled("backup cancelled")
            if self._read_file(path, node, had_parent, None) is None:
                node.content = None

    def _plan_dir_entries(self, plan: _DirPlan, path: str, parent_tree: bytes | None, fp, bp) -> None:
        self.stats.dirs += 1  # only the walk counts these: no lock
        listing = self._prescan.take_listing(path) if self._prescan is not None else None
        stats: list[os.stat_result | None] | None = None
        if listing is not None:
            names, stats = listing
        else:
            try:
                with os.scandir(path) as it:
                    names = sorted(e.name for e in it)
            except OSError as e:
                self._warn(f"cannot read directory {path}: {e.strerror}")
                return
        parents: dict[str, Node] = {}
        if parent_tree is not None:
            try:
                plan.parent_nodes, plan.parent_json = self.repo.load_tree_stored(parent_tree)
                plan.parent_tree = parent_tree
                parents = {n.name: n for n in plan.parent_nodes}
            except RepoError:
                parents = {}
        prefix = path if path.endswith("/") else path + "/"  # os.path.join's result, for less
        children = plan.children
        # Unchanged files keep their parent nodes (see _plan_entry); their blobs are looked up
        # in the index once for the whole directory, and in the rare case one is missing, each
        # of them goes the long way after all.
        kept: list[tuple[int, Node, os.stat_result]] = []
        same, cancel = self._same_file, self.cancel
        for i, name in enumerate(names):
            if cancel.is_set():
                raise Cancelled("backup cancelled")
            child_path = prefix + name
            s = stats[i] if stats is not None else None
            if s is None and (s := self._lstat(child_path)) is None:
                continue
            pnode = parents.get(name)
            if pnode is not None and same(pnode, s):
                kept.append((len(children), pnode, s))
                children.append(pnode)
                continue
            children.append(self._plan_entry(child_path, name, pnode, fp, bp, s))
        if not kept:
            return
        if self.repo.index.has_all(BlobType.DATA, [b for _, n, _ in kept for b in n.content or ()]):
            self.stats.files_unmodified += len(kept)  # only the walk counts these: no lock
            self.counters.done(files=len(kept), nbytes=sum(s.st_size for _, _, s in kept))
            return
        for at, pnode, s in kept:
            children[at] = self._plan_entry(prefix + pnode.name, pnode.name, pnode, fp, bp, s)

    def _same_file(self, pnode: Node, s: os.stat_result) -> bool:
        """Whether :meth:`_node` would make ``pnode`` again for a file with stat ``s``: same
        content by restic's rule, and every other field the stat, the owner names and the
        extended attributes (kept when ctime is, see _node) give."""
        names = self._names
        return (file_unchanged(pnode, s, s.st_atime_ns if self.with_atime else s.st_mtime_ns)
                and pnode.mode == _go_mode(s.st_mode) and pnode.uid == s.st_uid and pnode.gid == s.st_gid
                and pnode.device_id == s.st_dev and pnode.links == s.st_nlink
                and pnode.user == names.user(s.st_uid) and pnode.group == names.group(s.st_gid)
                and not (pnode.linktarget or pnode.device or pnode.subtree or pnode.error))

    def _node(self, path: str, name: str, s: os.stat_result, pnode: Node | None = None) -> Node:
        # once per entry of the source: plain locals and positional arguments (see Node.from_json)
        mode, mtime, ctime, ino, dev = s.st_mode, s.st_mtime_ns, s.st_ctime_ns, s.st_ino, s.st_dev
        t = _TYPES.get(st.S_IFMT(mode), "irregular")
        size = links = device = 0
        target = ""
        content: list[bytes] | None = None
        if t == "file":
            size, links, content = s.st_size, s.st_nlink, []
        elif t == "symlink":
            target, links = os.readlink(path), s.st_nlink
        elif t in ("dev", "chardev"):
            device, links = s.st_rdev, s.st_nlink
        if (pnode is not None and pnode.ctime == ctime and pnode.inode == ino
                and pnode.device_id == dev and pnode.type == t):
            # setting or removing an extended attribute moves ctime: same inode, same ctime,
            # same attributes (the same trust restic puts in ctime for a file's content)
            xattrs = list(pnode.xattrs)
        else:
            xattrs = read_xattrs(path)
        names = self._names
        return Node(name, t, _go_mode(mode), mtime, s.st_atime_ns if self.with_atime else mtime,
                    ctime, s.st_uid, s.st_gid, names.user(s.st_uid), names.group(s.st_gid), ino, dev,
                    size, links, target, xattrs, device, content)

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
            if bp is None:  # a small file, read as part of a batch
                return self._store_small(fd, path, node, had_parent)
            return self._store_content(fd, path, node, had_parent, bp)
        except OSError as e:
            self._warn(f"cannot read {path}: {e.strerror}; skipped")
            return None
        finally:
            os.close(fd)

    def _store_content(self, fd: int, path: str, node: Node, had_parent: bool, bp) -> Node:
        """Read, chunk and hash a file; each chunk is compressed, sealed and packed by the blob
        pool (``bp``), or in this thread when ``bp`` is None (small files, read in batches).

        Chunks are memoryviews of the read buffer: nothing is copied before compression.
        """
        ids: list[bytes] = []
        pending: deque[Future] = deque()
        size = 0
        carry: bytes | memoryview = b""
        # the first read asks for one byte more than the file holds, so a file that did not
        # change since its stat is read, and its end seen, in two read calls
        want = node.size + 1 if node.size < chunker.READ_SIZE else chunker.READ_SIZE
        save, sha256, cancel, readv = self._save_chunk, hashlib.sha256, self.cancel, os.readv
        # a chunk the repository holds already (most of a big file that changed in places) is
        # not handed to the blob pool: waking a blob worker only for save_blob's own index
        # lookup cost each such chunk two GIL hand-overs
        known = self.repo.index.has
        final = False
        while not final:
            if cancel.is_set():
                raise Cancelled("backup cancelled")
            # one buffer per read, carried-over tail first: chunks are views of it, so nothing is
            # copied before compression, and it is freed once its last chunk is packed
            keep = len(carry)
            view = memoryview(_read_buffer(keep + want))
            view[:keep] = carry
            carry = b""
            filled, end = keep, keep + want
            while filled < end:
                n = readv(fd, [view[filled:end]])
                if n == 0:
                    final = True
                    break
                filled += n
            want = chunker.READ_SIZE
            if filled:
                chunks, used = chunker.chunk_buffer(view[:filled], final)
                for c in chunks:
                    bid = sha256(c).digest()
                    ids.append(bid)
                    size += len(c)
                    if bp is None:
                        save(c, bid)
                    elif not known(BlobType.DATA, bid):
                        self._blob_slots.acquire()
                        f = bp.submit(save, c, bid)
                        f.add_done_callback(self._release_blob_slot)
                        pending.append(f)
                        # a device of terabytes has millions of chunks: keep only those in flight
                        while pending and pending[0].done():
                            pending.popleft().result()
                carry = view[used:filled]  # copied once, into the next read's buffer
                self.counters.done(nbytes=filled - keep)
        for f in pending:
            f.result()
        return self._stored(node, ids, size, had_parent, 0)

    def _store_small(self, fd: int, path: str, node: Node, had_parent: bool) -> Node:
        """A file under the minimum chunk size, which is one blob: read in one call (a second
        sees its end), hashed and stored in this thread, with none of the buffers and views
        :meth:`_store_content` needs to cut a big file (20,000 small files: that overhead was
        a good part of the Python the backup runs per file)."""
        data = os.read(fd, node.size + 1)
        if len(data) > node.size or os.read(fd, 1):  # it grew since its stat: cut it as a big one
            os.lseek(fd, 0, os.SEEK_SET)
            return self._store_content(fd, path, node, had_parent, None)
        ids = []
        if data:
            bid = hashlib.sha256(data).digest()
            self._save_chunk(data, bid)
            ids.append(bid)
        return self._stored(node, ids, len(data), had_parent, len(data))

    def _stored(self, node: Node, ids: list[bytes], size: int, had_parent: bool, nbytes: int) -> Node:
        """Record a file's content and count it (``nbytes``: read bytes not counted yet)."""
        node.size = size  # what was stored, also when the file grew or shrank while read
        node.content = ids
        with self.stats._lock:
            self.stats.bytes_read += size
            if had_parent:
                self.stats.files_changed += 1
            else:
                self.stats.files_new += 1
        self.counters.done(files=1, nbytes=nbytes)
        return node

    def _save_chunk(self, blob: bytes | memoryview, bid: bytes) -> None:
        _id, new = self.repo.save_blob(BlobType.DATA, blob, bid)
        if new:
            with self.stats._lock:
                self.stats.data_blobs_added += 1
                self.stats.data_added += len(blob)

    # ---- trees ----------------------------------------------------------------------------

    def _walked(self, plan: _DirPlan, fp, bp) -> None:
        """Save the trees of walked directories whose contents are stored. Not only the oldest:
        a directory waiting for a big file held back every tree walked after it, and those were
        then all encoded after the big file's last chunk, with the other core idle (a backup
        after a mutation: ~175 trees, the last 0.3-0.5 s of it). The walk is depth first, so a
        directory's subdirectories are older than it: one whose entries are stored has had
        its subdirectories saved already."""
        q = self._unfinished
        q.append(plan)
        self._unfinished_entries += len(plan.children)
        while q and self._unfinished_entries > MAX_UNFINISHED_ENTRIES:
            head = q.popleft()  # too many entries wait: wait for the oldest directory
            batch = self._batch
            if batch.items and any(c.__class__ is _Small and c.batch is batch for c in head.children):
                self._submit_batch(fp, bp)  # about to wait for it
            self._save_walked(head)
        waiting: list[_DirPlan] = []
        while q and len(waiting) < LOOK_PAST_WAITING:
            head = q.popleft()
            if _stored(head):
                self._save_walked(head)
            else:
                waiting.append(head)
        q.extendleft(reversed(waiting))

    def _save_walked(self, plan: _DirPlan) -> None:
        self._unfinished_entries -= len(plan.children)
        self._finish(plan)

    def _finish(self, plan: _DirPlan) -> bytes:
        if plan.tree is not None:
            return plan.tree
        nodes: list[Node] = []
        for c in plan.children:
            if c.__class__ is Node:  # most often, and always in a no-change backup
                nodes.append(c)
            elif isinstance(c, _DirPlan):
                c.node.subtree = self._finish(c)
                nodes.append(c.node)
            elif isinstance(c, _Small):
                assert c.batch.future is not None  # every batch is submitted before this pass
                c.batch.future.result()
                if c.node.content is not None:
                    nodes.append(c.node)
            elif isinstance(c, Future):
                n = c.result()
                if n is not None:
                    nodes.append(n)
            else:
                nodes.append(c)
        old = plan.parent_nodes
        if old is not None and len(old) == len(nodes) and plan.parent_tree is not None:
            # equal nodes encode to equal bytes: the parent's tree is this tree (if it is still
            # in the index; otherwise it is stored again below). The walk lists names in str
            # order, which is the trees' byte order unless a name is not UTF-8: compare as they
            # are first, kept nodes by identity.
            if (nodes == old or sorted(nodes, key=_name_key) == old) \
                    and self.repo.index.has(BlobType.TREE, plan.parent_tree):
                plan.tree = plan.parent_tree
        if plan.tree is None:
            kept = None
            if old is not None and plan.parent_json is not None:
                kept = {id(n): raw for n, raw in zip(old, stored_nodes(plan.parent_json), strict=True)}
            plan.tree = self.repo.save_tree(nodes, kept)
        plan.children, plan.parent_nodes, plan.parent_json = [], None, None
        return plan.tree

    # ---- totals for the progress bar -------------------------------------------------------

    def _scan(self, targets: list[str]) -> None:
        """Count files and bytes ahead of the backup (os.walk's view: symlinks not followed)."""
        try:
            for t in targets:
                if not os.path.isdir(t):
                    self.counters.add_total(files=1, nbytes=os.lstat(t).st_size)
                    continue
                stack = [t]
                while stack:
                    if self.cancel.is_set():
                        return
                    n = b = 0
                    try:
                        it = os.scandir(stack.pop())
                    except OSError:
                        continue
                    with it:
                        for e in it:
                            try:
                                if e.is_dir():
                                    if not e.is_symlink():
                                        stack.append(e.path)
                                    continue
                                n += 1
                                b += e.stat(follow_symlinks=False).st_size
                            except OSError:
                                continue
                    self.counters.add_total(files=n, nbytes=b)
        except OSError:
            pass
        finally:
            self.counters.scanning = False


def _read_buffer(size: int) -> bytearray | mmap.mmap:
    """A writable buffer of ``size`` bytes for a file read. One of a full read's size comes
    straight from an anonymous mapping: a bytearray of it is zeroed by a memset that holds the
    GIL (1,024 page faults per 4 MiB, taken while the walk waits), where the mapping's pages
    are faulted in by the read itself, in the kernel, without it."""
    return mmap.mmap(-1, size, mmap.MAP_PRIVATE) if size >= chunker.READ_SIZE else bytearray(size)


def _stored(plan: _DirPlan) -> bool:
    """Whether every entry of a walked directory is stored (its tree can be saved now). An
    entry once stored stays so: a directory asked again resumes at its first entry that was
    not, so one waiting behind a big file costs one look per call, however many entries it has."""
    children = plan.children
    i, n = plan.stored_upto, len(children)
    while i < n:
        c = children[i]
        if c.__class__ is not Node:
            if isinstance(c, _DirPlan):
                if c.tree is None:
                    break
            elif isinstance(c, _Small):
                if c.batch.future is None or not c.batch.future.done():
                    break
            elif isinstance(c, Future) and not c.done():
                break
        i += 1
    plan.stored_upto = i
    return i == n


def find_parent(repo: Repository, paths: list[str], host: str) -> Snapshot | None:
    """restic's default parent: the latest snapshot with the same host and the same paths."""
    want = sorted(os.path.abspath(p) for p in paths)
    cands = [s for s in repo.snapshots() if s.hostname == host and sorted(s.paths) == want]
    return max(cands, key=lambda s: (s.time, s.id)) if cands else None
