"""Restore a snapshot, or one file or folder of it, into a local directory.

The trees are walked breadth-first in windows of about WINDOW files and blobs, so memory stays
bounded however many files the snapshot holds; each window goes through three passes, so all
its work is known before a byte moves:

1. plan: load the trees of the next directories (in parallel), check every name, look up every
   data blob and group the blobs by pack; totals go to the counters;
2. skeleton: directories, multi-blob files already sized to their length (so what is never
   written stays a hole), symlinks, FIFOs, devices, hard links;
3. data: one job per pack reads the span holding the needed blobs with one ranged load (a few
   when they lie far apart), verifies each blob once and ``pwrite``s it everywhere it belongs;
   all-zero blobs are not written, so holes stay holes; a one-blob file is created, written
   and given its metadata here through one descriptor;

then the metadata of the window's other files: owner, mode, xattrs and times. Directories get
theirs after the last window, deepest first and each after its children, since creating or
removing a child changes a directory's mtime.

Nothing is ever written outside ``dest``: a name that is empty, ``.``, ``..`` or holds ``/`` or
NUL is refused, and every operation is relative to a directory descriptor that was itself opened
from its parent's with O_NOFOLLOW, so a symlink -- restored from the snapshot or already in
``dest`` -- is never followed. Whatever is in the way of an entry (a file, a symlink) is replaced,
never written through. A file whose data cannot be read intact is removed and reported, never
left silently wrong.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections import OrderedDict, deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from mover.errors import NotFound, RepoError
from mover.golang.gojson import go_quote
from mover.progress import Counters
from mover.repo.backend import FileType, Handle
from mover.repo.backend.local import LocalBackend
from mover.repo.blob import BlobType, PackedBlob
from mover.repo.repository import Repository
from mover.repo.tree import _collector_paused
from mover.view.node import NODE_IFMT, Node, posix_perm_from_go
from mover.view.protocol import RestoreResult

MAX_GAP = 1 << 20  # read through a gap this small rather than issue another request
MAX_SPAN = 32 << 20  # bound on one read, hence on the memory each worker holds
SMALL_BLOB = 256 << 10  # packs whose blobs average less are "small-file" packs (see _fill)
OPEN_DIRS = 64  # directory descriptors cached per thread
OPEN_FILES = 16  # file descriptors cached per pack job
# files and blobs planned per window: what the restore holds per file (its node, its entry, its
# blobs' places) is only held for one window (~1 KiB a file: ~25 MiB for 25,000 one-blob files)
WINDOW = 50_000
TREES_AT_ONCE = 64  # directories whose trees are loaded together

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: should something swap a FIFO in, open() fails instead of hanging
_WRITE_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# FIFOs and devices are never opened for I/O (opening a device can have side effects): their
# metadata is set through /proc/self/fd/N of an O_PATH descriptor, which names the inode itself.
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_SPECIAL = {t: NODE_IFMT[t] for t in ("fifo", "chardev", "dev")}


class RestoreSource(Protocol):
    """What a restore reads, whatever the repository format: directories, where each piece of
    a file is stored (packs, offsets, lengths), stored spans of packs, and how a stored piece
    becomes plaintext. ``PackedBlob.pack`` and ``.id`` are opaque to the restorer."""

    def location(self) -> str: ...
    def is_local(self) -> bool: ...
    def load_tree(self, subtree: bytes) -> list[Node]: ...
    def file_blobs(self, node: Node) -> list[PackedBlob]: ...
    def load_span(self, pack: bytes, offset: int, length: int) -> bytes: ...
    def decode_blob(self, pb: PackedBlob, sealed: memoryview) -> bytes: ...
    def missing_pack(self, pb: PackedBlob) -> str: ...


class ResticSource:
    """A restic repository as a :class:`RestoreSource`."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.load_tree = repo.load_tree
        self.decode_blob = repo.decode_blob

    def location(self) -> str:
        return self.repo.backend.location()

    def is_local(self) -> bool:
        return isinstance(self.repo.backend, LocalBackend)

    def file_blobs(self, node: Node) -> list[PackedBlob]:
        return [self.repo.lookup(BlobType.DATA, b) for b in node.content or []]

    def load_span(self, pack: bytes, offset: int, length: int) -> bytes:
        return self.repo.backend.load(Handle(FileType.PACK, pack.hex()), offset, length)

    def missing_pack(self, pb: PackedBlob) -> str:
        return (f"pack {pb.pack.hex()} holding data blob {pb.id.hex()[:16]} is missing from "
                f"{self.location()}")


def default_workers(src: RestoreSource) -> int:
    """Threads for the data pass: a local disk keeps up with one per core (more only pass the
    GIL back and forth: 3x the context switches for no gain on 2 cores); remote storage wants
    requests in flight."""
    if src.is_local():
        return max(2, min(4, os.cpu_count() or 2))
    return 8


def restore(repo: Repository | RestoreSource, node: Node, dest: str,
            counters: Counters | None = None, *, workers: int | None = None,
            cancel: threading.Event | None = None) -> RestoreResult:
    """Restore ``node`` into ``dest``; problems with single entries are collected, not raised.

    A directory's contents go into ``dest`` (created if missing), which also takes the
    directory's own metadata unless ``node`` is a snapshot root (name ``""``), which has none.
    A file goes to ``dest/<name>`` when ``dest`` is a directory, else to the path ``dest``.
    Raises RepoError only when ``dest`` itself is unusable; KeyboardInterrupt stops the workers
    before it propagates, and ``cancel`` stops the restore with ``result.cancelled`` set.
    """
    src = ResticSource(repo) if isinstance(repo, Repository) else repo
    if workers is None:
        workers = default_workers(src)
    r = _Restorer(src, counters or Counters(), max(1, workers), cancel or threading.Event())
    return r.run(node, dest)


class _Cancelled(Exception):
    pass


class _Entry:
    """One node of the restore and its place under ``dest`` (the root's name is the dest path)."""

    __slots__ = ("node", "name", "parent", "children", "ok", "done", "link_to", "pending", "size",
                 "direct", "fresh", "plain")

    def __init__(self, node: Node, name: str, parent: _Entry | None) -> None:
        self.node = node
        self.name = name
        self.parent = parent
        self.children: list[_Entry] | None = None
        self.ok = True  # restored so far (False: failed, or skipped with a warning)
        self.done = False  # created, and all its data written
        self.link_to: _Entry | None = None  # hard link: the entry that carries the data
        self.pending = 0  # blob writes still to come
        self.size = 0  # content length
        # a file of one blob, and no hard link's target: created, written and given its
        # metadata in one go when its blob is decoded (one open instead of three)
        self.direct = False
        self.fresh = False  # a directory this restore created: nothing can be in the way in it
        # a directory whose new entries get the restoring process's owner and group: made by
        # this restore inside such a directory (mkdir passes a setgid bit, and with it the group,
        # down to new directories); the root is one unless it has a setgid bit
        self.plain = False

    @property
    def up(self) -> _Entry:
        """The directory this entry is in: every entry has one but the root, never written to."""
        assert self.parent is not None
        return self.parent

    def path(self) -> str:
        names = []
        e: _Entry | None = self
        while e is not None:
            names.append(e.name)
            e = e.parent
        return go_quote(os.path.join(*reversed(names)))  # one line, whatever the names hold


def _bad_name(name: str) -> str:
    if name in ("", ".", ".."):
        return f'unsafe name "{go_quote(name)}"'
    if "/" in name or "\0" in name:
        return f'unsafe name "{go_quote(name)}" (holds "/" or NUL)'
    return ""


class _Dirs:
    """Descriptors of the restore's directories, each opened from its parent's with O_NOFOLLOW.

    Cached per thread; a descriptor stays valid until the next :meth:`trim`.
    """

    def __init__(self, root: _Entry, root_fd: int) -> None:
        self.root = root
        self.root_fd = root_fd
        self._open: OrderedDict[_Entry, int] = OrderedDict()

    def fd(self, e: _Entry) -> int:
        chain = []
        while e is not self.root and e not in self._open:
            chain.append(e)
            e = e.up
        if e is self.root:
            fd = self.root_fd
        else:
            fd = self._open[e]
            self._open.move_to_end(e)
        for d in reversed(chain):
            fd = os.open(d.name, _DIR_FLAGS, dir_fd=fd)
            self._open[d] = fd
        return fd

    def trim(self) -> None:
        while len(self._open) > OPEN_DIRS:
            os.close(self._open.popitem(last=False)[1])

    def close(self) -> None:
        for fd in self._open.values():
            os.close(fd)
        self._open.clear()


class _Files:
    """Write descriptors of one pack job, a few kept open across consecutive blobs."""

    def __init__(self, dirs: _Dirs) -> None:
        self.dirs = dirs
        self._open: OrderedDict[_Entry, int] = OrderedDict()

    def pwrite(self, e: _Entry, data: bytes, offset: int) -> None:
        fd = self._open.get(e)
        if fd is None:
            fd = os.open(e.name, _WRITE_FLAGS, dir_fd=self.dirs.fd(e.up))
            self.dirs.trim()
            self._open[e] = fd
            if len(self._open) > OPEN_FILES:
                os.close(self._open.popitem(last=False)[1])
        else:
            self._open.move_to_end(e)
        view = memoryview(data)
        while view:
            n = os.pwrite(fd, view, offset)
            view, offset = view[n:], offset + n

    def close(self) -> None:
        for fd in self._open.values():
            os.close(fd)
        self._open.clear()
        self.dirs.close()


def _umask() -> int | None:
    """The process's umask, read without changing it (``os.umask`` can only swap it, and other
    threads may create files meanwhile); None where /proc does not tell (Linux < 4.7)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _is_zero(data: bytes) -> bool:
    # memcmp against calloc'd zeros: C speed, and stops at the first non-zero byte
    return data[:1] == b"\0" and data == bytes(len(data))


def _spans(items: list[tuple[PackedBlob, list]]) -> list[list[tuple[PackedBlob, list]]]:
    """Group blobs sorted by offset into reads: split at large gaps and at MAX_SPAN."""
    spans: list[list[tuple[PackedBlob, list]]] = []
    for it in items:
        pb = it[0]
        if spans:
            first, last = spans[-1][0][0], spans[-1][-1][0]
            if (pb.offset - (last.offset + last.length) <= MAX_GAP
                    and pb.offset + pb.length - first.offset <= MAX_SPAN):
                spans[-1].append(it)
                continue
        spans.append([it])
    return spans


class _Restorer:
    def __init__(self, src: RestoreSource, counters: Counters, workers: int,
                 cancel: threading.Event) -> None:
        self.src = src
        self.counters = counters
        self.workers = workers
        self.cancel = cancel
        self.result = RestoreResult()
        self._lock = threading.Lock()
        self._dirs: list[_Entry] = []  # breadth-first: parents before children
        # pack -> blob -> (location, [(file, offset)]) of the window: a blob used many times in
        # it is read once
        self._packs: dict[bytes, dict[bytes, tuple[PackedBlob, list[tuple[_Entry, int]]]]] = {}
        self._planned = 0  # files and blobs in the window
        # the first name of each multiply linked inode: kept across windows (links are rare)
        self._inodes: dict[tuple[int, int], _Entry] = {}
        self._root_meta = False
        # what a new file gets without being told: the owner, group and the permission bits
        # the umask lets through (None: unknown, so always set)
        self._owner = (os.geteuid(), os.getegid())
        self._umask = _umask()

    # ---- reporting -----------------------------------------------------------------------

    def _error(self, e: _Entry | None, msg: str) -> None:
        """Record an error; with an entry, only its first one (it is then failed)."""
        with self._lock:
            if e is not None:
                if not e.ok:
                    return
                e.ok = False
            self.result.errors.append(msg)
        self.counters.error()

    def _warn(self, msg: str) -> None:
        with self._lock:
            self.result.warnings.append(msg)

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise _Cancelled

    # ---- driver --------------------------------------------------------------------------

    def run(self, node: Node, dest: str) -> RestoreResult:
        root = self._root(node, os.path.abspath(dest))
        try:
            root_fd = os.open(root.name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as ex:
            raise RepoError(f"cannot open {go_quote(root.name)}: {ex.strerror}") from None
        try:
            root.plain = not os.fstat(root_fd).st_mode & stat.S_ISGID
            # the plan allocates a few objects per file, none in a cycle: collections set off
            # by them would scan every node planned so far, again and again
            with _collector_paused():
                for window in self._plan(root):
                    self._create(window, root, root_fd)
                    self._fill(root, root_fd)
                    self._finish_files(window, root, root_fd)
                self._finish_dirs(root, root_fd)
        except _Cancelled:
            self.result.cancelled = True
        except BaseException:
            self.cancel.set()  # KeyboardInterrupt: let running workers stop at their next blob
            raise
        finally:
            os.close(root_fd)
            self.counters.scanning = False
        return self.result

    def _root(self, node: Node, dest: str) -> _Entry:
        """The entry for dest: the directory itself, or the parent of the file to restore."""
        try:
            if node.type == "dir":
                os.makedirs(dest, exist_ok=True)
                self._root_meta = node.name != ""  # a snapshot root is synthetic
                return _Entry(node, dest, None)
            if os.path.isdir(dest):
                parent, name = dest, node.name
            else:
                parent, name = os.path.split(dest)
                os.makedirs(parent, exist_ok=True)
        except OSError as ex:
            raise RepoError(f"cannot create {go_quote(ex.filename or dest)}: {ex.strerror}") from None
        # the directory that receives the file is not in the snapshot: no metadata (_root_meta)
        root = _Entry(Node(name="", type="dir"), parent, None)
        root.children = []
        problem = _bad_name(name)
        if problem:
            self._error(None, f"{go_quote(parent)}: {problem}; skipped")
        else:
            root.children.append(_Entry(node, name, root))
        return root

    # ---- 1. plan -------------------------------------------------------------------------

    def _plan(self, root: _Entry) -> Iterator[list[_Entry]]:
        """Windows of directories whose children are planned (breadth-first, so a directory
        is always created in an earlier window than its children or in the same one)."""
        self._dirs.append(root)
        if root.children is not None:  # a single file
            for c in root.children:
                self._plan_leaf(c)
            self.counters.scanning = False
            yield [root]
            return
        todo = deque([root])
        window: list[_Entry] = []
        with ThreadPoolExecutor(self.workers, thread_name_prefix="restore-plan") as pool:
            while todo:
                self._check_cancel()
                batch = [todo.popleft() for _ in range(min(len(todo), TREES_AT_ONCE))]
                for d, nodes in zip(batch, pool.map(self._load_tree, batch), strict=True):
                    if nodes is not None:
                        subdirs = self._add_children(d, nodes)
                        self._dirs += subdirs
                        todo += subdirs
                        window.append(d)
                if self._planned >= WINDOW and todo:
                    yield window
                    window, self._planned = [], 0
        self.counters.scanning = False
        yield window

    def _load_tree(self, d: _Entry) -> list[Node] | None:
        if d.node.subtree is None:
            self._error(None, f"{d.path()}: directory without a subtree in the snapshot; left empty")
            return None
        try:
            return self.src.load_tree(d.node.subtree)
        except RepoError as ex:
            self._error(None, f"{d.path()}: cannot read the directory's contents: {ex}")
            return None

    def _add_children(self, d: _Entry, nodes: list[Node]) -> list[_Entry]:
        d.children = []
        subdirs = []
        seen: set[str] = set()
        for n in nodes:
            problem = _bad_name(n.name) or (f'"{go_quote(n.name)}" appears twice' if n.name in seen else "")
            if problem:
                self._error(None, f"{d.path()}: {problem}; skipped")
                continue
            seen.add(n.name)
            c = _Entry(n, n.name, d)
            d.children.append(c)
            if n.type == "dir":
                subdirs.append(c)
            else:
                self._plan_leaf(c)
        self._planned += len(d.children)
        return subdirs

    def _plan_leaf(self, c: _Entry) -> None:
        n = c.node
        self.counters.add_total(files=1)
        if n.type != "file":
            return
        if n.links > 1 and n.inode:  # without an inode number there is nothing to match on
            first = self._inodes.setdefault((n.inode, n.device_id), c)
            if first is not c:
                c.link_to = first
                first.direct = False  # it must exist before the links to it are made
                return
        if n.size == 0:  # restic's rule: size 0 is an empty file, whatever content says
            return
        try:
            blobs = self.src.file_blobs(n)
        except RepoError as ex:
            self._error(c, f"{c.path()}: {ex}; file not restored")
            return
        offset = 0
        for pb in blobs:
            self._packs.setdefault(pb.pack, {}).setdefault(pb.id, (pb, []))[1].append((c, offset))
            offset += pb.plain_length
        c.size, c.pending = offset, len(blobs)
        self._planned += len(blobs)
        c.direct = len(blobs) == 1  # a hard link to it, found later, turns this off
        if offset != n.size:
            self._warn(f"{c.path()}: the snapshot records {n.size} bytes but the content has "
                       f"{offset}; restored the content")
        self.counters.add_total(nbytes=offset)

    # ---- 2. skeleton ---------------------------------------------------------------------

    def _create(self, window: list[_Entry], root: _Entry, root_fd: int) -> None:
        dirs = _Dirs(root, root_fd)
        try:
            for d in window:
                self._check_cancel()
                if d.parent is not None and not d.parent.ok:
                    d.ok = False  # its parent could not be made; the error is already reported
                if not d.ok or not d.children:
                    continue
                try:
                    fd = dirs.fd(d)
                except OSError as ex:
                    self._error(d, f"{d.path()}: cannot open: {ex.strerror}")
                    continue
                for c in d.children:
                    try:
                        self._make(fd, c, dirs)
                    except OSError as ex:
                        self._error(c, f"{c.path()}: cannot create: {ex.strerror}")
                dirs.trim()
        finally:
            dirs.close()

    def _make(self, fd: int, c: _Entry, dirs: _Dirs) -> None:
        n, name = c.node, c.name
        if n.type == "dir":
            try:
                os.mkdir(name, 0o700, dir_fd=fd)
                c.fresh = True
            except FileExistsError:  # keep a directory (restic merges); replace anything else
                if not stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                    os.unlink(name, dir_fd=fd)
                    os.mkdir(name, 0o700, dir_fd=fd)
                    c.fresh = True
            c.plain = c.fresh and c.up.plain
            c.done = True
            return
        # A file is replaced, not truncated: the old one may be a hard link to something else.
        # (In a directory made by this restore there is nothing to replace.)
        if not c.up.fresh:
            try:
                os.unlink(name, dir_fd=fd)
            except FileNotFoundError:
                pass
            except IsADirectoryError:
                raise OSError(errno.EISDIR, "a directory is in the way (not replaced)") from None
        if not c.ok:  # its data is already known to be unreadable; the old file is gone too
            return
        if n.type == "file":
            if c.link_to is not None:
                if not c.link_to.ok:
                    self._error(c, f"{c.path()}: not linked, {c.link_to.path()} was not restored")
                    return
                os.link(c.link_to.name, name, src_dir_fd=dirs.fd(c.link_to.up), dst_dir_fd=fd,
                        follow_symlinks=False)
            elif c.direct:
                return  # made with its data by _write_direct
            else:
                f = os.open(name, _CREATE_FLAGS, 0o600, dir_fd=fd)
                try:
                    if c.size:
                        os.ftruncate(f, c.size)  # sized now: unwritten ranges stay holes
                finally:
                    os.close(f)
                if c.pending:
                    return  # counted as done when its last blob lands
        elif n.type == "symlink":
            os.symlink(n.linktarget, name, dir_fd=fd)
        elif n.type == "fifo":
            os.mkfifo(name, 0o600, dir_fd=fd)
        elif n.type in _SPECIAL:
            try:
                os.mknod(name, _SPECIAL[n.type] | 0o600, n.device, dir_fd=fd)
            except PermissionError:
                c.ok = False
                self._warn(f"{c.path()}: device node not restored (mknod not permitted)")
                return
        else:  # sockets and irregular files cannot be recreated (restic skips them too)
            c.ok = False
            self._warn(f"{c.path()}: {n.type} not restored")
            return
        c.done = True
        self.counters.done(files=1)

    # ---- 3. data -------------------------------------------------------------------------

    def _fill(self, root: _Entry, root_fd: int) -> None:
        """Run the pack jobs on ``workers`` threads, half of them preferring packs of small
        blobs and half packs of big ones. A small blob's work (creating its file, metadata) is
        mostly Python holding the GIL; a big blob's is decryption, decompression, hashing and
        writing without it; running one kind beside the other keeps both cores busy."""
        jobs, self._packs = self._packs, {}
        if not jobs:
            return
        queues: tuple[deque, deque] = (deque(), deque())  # (many small blobs, few big ones)
        for pack, blobs in jobs.items():
            plain = sum(pb.plain_length for pb, _ in blobs.values())
            queues[0 if plain < len(blobs) * SMALL_BLOB else 1].append((pack, blobs))
        del jobs
        lock = threading.Lock()
        failure: list[BaseException] = []

        def work(prefer: int) -> None:
            try:
                while not self.cancel.is_set():
                    with lock:
                        q = queues[prefer] or queues[1 - prefer]
                        if not q:
                            return
                        pack, blobs = q.popleft()
                    self._fill_pack(pack, blobs, _Dirs(root, root_fd))
            except BaseException as ex:  # re-raised by the caller
                with lock:
                    failure.append(ex)
                self.cancel.set()

        threads = [threading.Thread(target=work, args=(i % 2,), name=f"restore_{i}", daemon=True)
                   for i in range(self.workers)]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        except BaseException:
            self.cancel.set()  # KeyboardInterrupt: workers stop at their next blob
            for t in threads:
                t.join()
            raise
        if failure:
            raise failure[0]
        self._check_cancel()

    def _fill_pack(self, pack: bytes, blobs: dict, dirs: _Dirs) -> None:
        files = _Files(dirs)
        try:
            for span in _spans(sorted(blobs.values(), key=lambda it: it[0].offset)):
                if self.cancel.is_set():
                    return
                span = [it for it in span if any(e.ok for e, _ in it[1])]
                if not span:
                    continue
                start = span[0][0].offset
                end = max(pb.offset + pb.length for pb, _ in span)
                try:
                    data = memoryview(self.src.load_span(pack, start, end - start))
                except NotFound:
                    for pb, uses in span:
                        self._fail_uses(uses, self.src.missing_pack(pb))
                    continue
                except RepoError as ex:
                    for _, uses in span:
                        self._fail_uses(uses, str(ex))
                    continue
                for pb, uses in span:
                    self._write_blob(pb, data[pb.offset - start:pb.offset - start + pb.length], uses, files)
        finally:
            files.close()

    def _write_blob(self, pb: PackedBlob, sealed: memoryview, uses: list[tuple[_Entry, int]],
                    files: _Files) -> None:
        try:
            plain = self.src.decode_blob(pb, sealed)
        except RepoError as ex:
            self._fail_uses(uses, str(ex))
            return
        zero = _is_zero(plain)
        for e, offset in uses:
            if not e.ok:
                continue
            if e.direct:
                self._write_direct(e, plain, zero, files)
                continue
            if not zero:
                try:
                    files.pwrite(e, plain, offset)
                except OSError as ex:
                    self._error(e, f"{e.path()}: cannot write: {ex.strerror}; file not restored")
                    continue
            with self._lock:
                e.pending -= 1
                finished = e.done = e.pending == 0
            self.counters.done(files=int(finished), nbytes=len(plain))

    def _write_direct(self, e: _Entry, plain: bytes, zero: bool, files: _Files) -> None:
        """Create a one-blob file, write it, set its metadata: one descriptor for all of it.

        A new file already has this process's owner and group (in a directory without a setgid
        bit), and the mode it is created with when the umask keeps none of its bits: then it
        is created with its mode, and the chown and chmod are left out (each is a journalled
        inode update, a third of a small file's system time)."""
        n = e.node
        owned = e.up.plain and n.uid == self._owner[0] and n.gid == self._owner[1]
        perm = posix_perm_from_go(n.mode)
        moded = owned and self._umask is not None and not perm & (self._umask | ~0o777)
        try:
            fd = os.open(e.name, _CREATE_FLAGS, perm if moded else 0o600, dir_fd=files.dirs.fd(e.up))
        except OSError as ex:
            self._error(e, f"{e.path()}: cannot create: {ex.strerror}")
            return
        finally:
            files.dirs.trim()
        try:
            try:
                if zero:
                    os.ftruncate(fd, len(plain))  # a hole, as for any all-zero blob
                else:
                    view = memoryview(plain)
                    while view:
                        view = view[os.write(fd, view):]
            except OSError as ex:
                self._error(e, f"{e.path()}: cannot write: {ex.strerror}; file not restored")
                return
            with self._lock:
                e.pending = 0
                e.done = True
            self._apply_meta(e, fd, owner=not owned, mode=not moded)
        finally:
            os.close(fd)
        self.counters.done(files=1, nbytes=len(plain))

    def _fail_uses(self, uses: list[tuple[_Entry, int]], msg: str) -> None:
        for e, _ in uses:
            self._error(e, f"{e.path()}: {msg}; file not restored")

    # ---- 4. metadata ---------------------------------------------------------------------

    def _finish_files(self, window: list[_Entry], root: _Entry, root_fd: int) -> None:
        """The window's files: failed ones removed, the others given their metadata and
        counted; then they are let go (a directory keeps only its own node)."""
        res = self.result
        dirs = _Dirs(root, root_fd)
        try:
            for d in window:
                self._check_cancel()
                children, d.children = d.children or [], None
                if not d.ok:
                    continue
                try:
                    fd = dirs.fd(d)
                except OSError as ex:
                    self._error(d, f"{d.path()}: cannot open: {ex.strerror}")
                    continue
                for c in children:
                    if c.node.type == "dir":
                        continue
                    if c.ok and c.link_to is not None and not c.link_to.ok:
                        self._error(c, f"{c.path()}: not restored, a hard link to {c.link_to.path()}")
                    if not c.ok:
                        if c.node.type == "file":  # never leave a partly written file behind
                            try:
                                os.unlink(c.name, dir_fd=fd)
                            except (FileNotFoundError, IsADirectoryError):  # not ours
                                pass
                            except OSError as ex:
                                self._error(None, f"{c.path()}: incomplete, and cannot be removed: "
                                                  f"{ex.strerror}")
                        continue
                    if c.link_to is None and not c.direct:  # direct: set when written; a hard
                        self._set_meta(c, fd)  # link shares its first name's inode and metadata
                    if c.done:
                        res.files += 1
                        if c.link_to is None:
                            res.bytes += c.size
                dirs.trim()
        finally:
            dirs.close()

    def _finish_dirs(self, root: _Entry, root_fd: int) -> None:
        dirs = _Dirs(root, root_fd)
        try:
            # reversed breadth-first order: every directory after all its descendants
            for d in reversed(self._dirs):
                self._check_cancel()
                if not d.ok:
                    continue
                if d.parent is not None or self._root_meta:
                    try:
                        fd = dirs.fd(d)
                    except OSError as ex:
                        self._error(d, f"{d.path()}: cannot open: {ex.strerror}")
                        continue
                    self._apply_meta(d, fd)
                    dirs.trim()
                if d.done:
                    self.result.dirs += 1
        finally:
            dirs.close()

    def _set_meta(self, c: _Entry, dir_fd: int) -> None:
        n = c.node
        if n.type == "symlink":
            self._apply_meta(c, c.name, dir_fd)
            return
        try:
            fd = os.open(c.name, _PATH_FLAGS if n.type in _SPECIAL else _READ_FLAGS, dir_fd=dir_fd)
        except OSError as ex:
            self._error(c, f"{c.path()}: cannot set metadata: {ex.strerror}")
            return
        try:
            if stat.S_ISLNK(os.fstat(fd).st_mode):  # swapped for a symlink since we made it
                self._error(c, f"{c.path()}: replaced by a symlink during the restore; metadata not set")
            elif n.type in _SPECIAL:
                self._apply_meta(c, f"/proc/self/fd/{fd}")
            else:
                self._apply_meta(c, fd)
        finally:
            os.close(fd)

    def _apply_meta(self, c: _Entry, target: int | str, dir_fd: int | None = None, *,
                    owner: bool = True, mode: bool = True) -> None:
        """Owner, mode, xattrs, times, in that order: chown clears setuid/setgid bits.

        ``target`` is a descriptor or a path; with ``dir_fd`` it is a name in that directory,
        which is not followed (symlinks). ``owner``/``mode`` False: already right.
        """
        n = c.node
        follow = dir_fd is None
        if owner:
            try:
                os.chown(target, n.uid, n.gid, dir_fd=dir_fd, follow_symlinks=follow)
            except PermissionError:
                if self._owner[0] == 0:  # like cp -a, rsync -a and restic: only root must get owners right
                    self._error(None, f"{c.path()}: cannot set owner {n.uid}:{n.gid}")
            except OSError as ex:
                self._error(None, f"{c.path()}: cannot set owner {n.uid}:{n.gid}: {ex.strerror}")
        if mode and n.type != "symlink":  # Linux has no symlink modes
            try:
                os.chmod(target, posix_perm_from_go(n.mode))
            except OSError as ex:
                self._error(None, f"{c.path()}: cannot set mode: {ex.strerror}")
        for xname, value in n.xattrs:
            try:
                if dir_fd is None:
                    os.setxattr(target, xname, value)
                else:  # setxattr has no dir_fd; the /proc path resolves to the held directory
                    os.setxattr(f"/proc/self/fd/{dir_fd}/{target}", xname, value, follow_symlinks=False)
            except OSError as ex:
                msg = f"{c.path()}: cannot set extended attribute {xname}: {ex.strerror}"
                # Linux allows user.* only on files and dirs; other namespaces depend on the system
                if xname.startswith("user.") and n.type in ("file", "dir"):
                    self._error(None, msg)
                else:
                    self._warn(msg)
        try:
            os.utime(target, ns=(n.atime, n.mtime), dir_fd=dir_fd, follow_symlinks=follow)
        except (OSError, OverflowError) as ex:
            self._error(None, f"{c.path()}: cannot set times: {getattr(ex, 'strerror', ex)}")
