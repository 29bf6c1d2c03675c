"""The FUSE kernel protocol, spoken on /dev/fuse directly (Linux).

Why not libfuse2 through fusepy (:mod:`kbrowse.fuse.libfuse`, kept for systems where this module
cannot run): libfuse2 predates READDIRPLUS, so `ls -l`, `find` and `du` cost one LOOKUP round
trip per file, and each of those costs ~40 us of ctypes callbacks and path building. Here a
directory page carries every entry's attributes, which the kernel caches, so stat'ing a listed
file never reaches this process; and any request costs one read, a struct unpack and one write.

The mount itself is made by fusermount (Debian package fuse), as libfuse does: it opens
/dev/fuse, mounts, and hands the descriptor back over a socket, so no root is needed.

The filesystem is path-based (:class:`kbrowse.fuse.fs.SnapshotFS`); this module keeps the kernel's
node ids: one per path the kernel holds, counted by lookups and dropped on FORGET.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from mover.errors import RepoError

ROOT_ID = 1
WORKERS = 8  # requests served at once; blob fetches and decryption release the GIL
MAX_WRITE = 128 * 1024  # nothing is written, but the kernel sizes its read buffer check on it
MAX_PAGES = 256  # a READ asks for up to 1 MiB
BUFFER = MAX_WRITE + 64 * 1024  # request buffer: header, arguments and the largest payload
PROTOCOL_MINOR = 38  # the fuse.h the structures below follow
NEGATIVE_SECONDS = 1
STOP_GRACE = 2.0  # seconds a signalled mount goes on serving those still inside it

_ENC = "latin-1"  # one character per byte: any name passes through as the path text

# opcodes (include/uapi/linux/fuse.h)
LOOKUP, FORGET, GETATTR, READLINK, OPEN, READ = 1, 2, 3, 5, 14, 15
STATFS, RELEASE, GETXATTR, LISTXATTR, FLUSH, INIT = 17, 18, 22, 23, 25, 26
OPENDIR, READDIR, RELEASEDIR, ACCESS, INTERRUPT, DESTROY = 27, 28, 29, 34, 36, 38
BATCH_FORGET, READDIRPLUS = 42, 44
_WRITES = {4: "setattr", 6: "symlink", 8: "mknod", 9: "mkdir", 10: "unlink", 11: "rmdir",
           12: "rename", 13: "link", 16: "write", 20: "fsync", 21: "setxattr",
           24: "removexattr", 30: "fsyncdir", 35: "create", 43: "fallocate", 45: "rename2",
           47: "copy_file_range", 51: "tmpfile"}
_NO_REPLY = {FORGET, BATCH_FORGET, INTERRUPT}

# INIT flags we ask for (the kernel grants the ones it has)
ASYNC_READ, DO_READDIRPLUS, PARALLEL_DIROPS = 1 << 0, 1 << 13, 1 << 18
MAX_PAGES_FLAG = 1 << 22
# not FUSE_CACHE_SYMLINKS: `snapshots/latest` changes target when a backup lands
_WANTED = ASYNC_READ | DO_READDIRPLUS | PARALLEL_DIROPS | MAX_PAGES_FLAG
FOPEN_KEEP_CACHE = 1 << 1

IN_HEADER = struct.Struct("<IIQQIIIHH")  # len opcode unique nodeid uid gid pid extlen pad
OUT_HEADER = struct.Struct("<IiQ")  # len error unique
_ATTR = "QQQqqqIIIIIIIIII"  # ino size blocks a/m/ctime a/m/ctime-nsec mode nlink uid gid rdev
#                             blksize flags
ENTRY_OUT = struct.Struct("<QQQQII" + _ATTR)  # nodeid generation entry/attr valid (+nsec)
ATTR_OUT = struct.Struct("<QII" + _ATTR)  # attr valid, nsec, dummy
DIRENT = struct.Struct("<QQII")  # ino off namelen type, then the name padded to 8 bytes
OPEN_IN = struct.Struct("<II")  # flags open_flags
OPEN_OUT = struct.Struct("<QII")  # fh open_flags padding
FH_IN = struct.Struct("<Q")  # release_in, flush_in and read_in start with fh
READ_IN = struct.Struct("<QQI")  # fh offset size
XATTR_IN = struct.Struct("<II")  # size padding (getxattr: then the name)
XATTR_OUT = struct.Struct("<II")  # size padding
FORGET_IN = struct.Struct("<Q")  # nlookup
BATCH_FORGET_IN = struct.Struct("<II")  # count dummy, then count FORGET_ONEs
FORGET_ONE = struct.Struct("<QQ")  # nodeid nlookup
INIT_IN = struct.Struct("<IIII")  # major minor max_readahead flags
INIT_OUT = struct.Struct("<IIIIHHIIHHI28x")
STATFS_OUT = struct.Struct("<QQQQQIIII24x")  # blocks bfree bavail files ffree bsize namelen frsize

_NEGATIVE = (0,) * 16  # attributes of "no such name", which the kernel caches too
_NO_ENTRY = ENTRY_OUT.pack(0, 0, 0, 0, 0, 0, *_NEGATIVE)  # a dirent without attributes


class PathFS(Protocol):
    """What :class:`kbrowse.fuse.fs.SnapshotFS` offers: fusepy's operations, by path; stats are
    fusepy dicts with times in integer nanoseconds, and an optional "cache_seconds" that
    shortens how long the kernel keeps that name and its attributes; errors are OSErrors with
    an errno."""

    def init(self, path: str) -> None: ...
    def destroy(self, path: str) -> None: ...
    def getattr(self, path: str, fh: object = None) -> dict: ...
    def readlink(self, path: str) -> str: ...
    def open(self, path: str, flags: int) -> int: ...
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes: ...
    def release(self, path: str, fh: int) -> int: ...
    def opendir(self, path: str) -> int: ...
    def readdir_plus(self, path: str, fh: int, offset: int) -> Iterator[tuple[str, dict, int, bool]]: ...
    def releasedir(self, path: str, fh: int) -> int: ...
    def getxattr(self, path: str, name: str, position: int = 0) -> bytes: ...
    def listxattr(self, path: str) -> list[str]: ...


def _attr(st: dict) -> tuple[int, ...]:
    a_s, a_ns = divmod(st.get("st_atime", 0), 1_000_000_000)
    m_s, m_ns = divmod(st.get("st_mtime", 0), 1_000_000_000)
    c_s, c_ns = divmod(st.get("st_ctime", 0), 1_000_000_000)
    return (st["st_ino"], st.get("st_size", 0), st.get("st_blocks", 0), a_s, m_s, c_s,
            a_ns, m_ns, c_ns, st["st_mode"], st.get("st_nlink", 1), st.get("st_uid", 0),
            st.get("st_gid", 0), st.get("st_rdev", 0), 0, 0)


def _child(parent: str, name: str) -> str:
    return "/" + name if parent == "/" else parent + "/" + name


class Session:
    """One mounted filesystem: worker threads answering the kernel's requests on ``fd``."""

    def __init__(self, ops: PathFS, fd: int, *, cache_seconds: int,
                 log: Callable[[str], None]) -> None:
        self.ops = ops
        self.fd = fd
        self.valid = cache_seconds
        self.log = log
        self._lock = threading.Lock()
        self._paths: dict[int, list] = {ROOT_ID: ["/", 1]}  # node id -> [path, lookups]
        self._ids: dict[str, int] = {"/": ROOT_ID}
        self._next_id = ROOT_ID + 1
        self._stopped: float | None = None
        self._handlers: dict[int, Callable[[str, memoryview], bytes | list[bytes]]] = {
            LOOKUP: self._lookup, GETATTR: self._getattr, READLINK: self._readlink,
            OPEN: self._open, READ: self._read, RELEASE: self._release, STATFS: self._statfs,
            GETXATTR: self._getxattr, LISTXATTR: self._listxattr, FLUSH: self._nothing,
            OPENDIR: self._opendir, READDIR: self._readdir, READDIRPLUS: self._readdirplus,
            RELEASEDIR: self._releasedir, ACCESS: self._nothing, DESTROY: self._nothing,
        }

    # ---- the loop ------------------------------------------------------------------------------

    def run(self, workers: int = WORKERS) -> None:
        """Serve until the filesystem is unmounted (the kernel then ends the connection), or
        until STOP_GRACE seconds after :meth:`stop` while someone still sits in the detached
        mount: the caller then exits, which ends the connection, as libfuse does."""
        threads = [threading.Thread(target=self._worker, name=f"fuse-{i}", daemon=True)
                   for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.5)  # a timeout, so the main thread keeps running signal handlers
                if self._stopped is not None and time.monotonic() - self._stopped > STOP_GRACE:
                    break
        self.ops.destroy("/")

    def stop(self) -> None:
        """Asked to end (a signal): the mount is detached; :meth:`run` returns soon."""
        if self._stopped is None:
            self._stopped = time.monotonic()

    def _worker(self) -> None:
        buf = bytearray(BUFFER)
        view = memoryview(buf)
        while True:
            try:
                n = os.readv(self.fd, [buf])
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.EINTR, errno.EAGAIN):
                    continue  # ENOENT: the request was interrupted before we read it
                if e.errno != errno.ENODEV:  # ENODEV: unmounted
                    self.log(f"reading from the FUSE device failed: {e.strerror}")
                return
            if n < IN_HEADER.size:
                return
            _, opcode, unique, nodeid, *_ = IN_HEADER.unpack_from(buf)
            if not self._answer(opcode, unique, nodeid, view[IN_HEADER.size:n]):
                return

    def _answer(self, opcode: int, unique: int, nodeid: int, body: memoryview) -> bool:
        """Handle one request; False once the connection is gone."""
        if opcode in _NO_REPLY:
            if opcode == FORGET:
                self._forget(nodeid, FORGET_IN.unpack_from(body)[0])
            elif opcode == BATCH_FORGET:
                count = BATCH_FORGET_IN.unpack_from(body)[0]
                for i in range(count):
                    self._forget(*FORGET_ONE.unpack_from(
                        body, BATCH_FORGET_IN.size + FORGET_ONE.size * i))
            return True  # INTERRUPT: every request here ends soon; it is answered normally
        error = 0
        payload: bytes | list[bytes] = b""
        try:
            if opcode == INIT:
                payload = self._init(body)
            elif opcode in _WRITES:
                error = errno.EROFS
            else:
                handler = self._handlers.get(opcode)
                if handler is None:
                    error = errno.ENOSYS
                else:
                    payload = handler(self._path(nodeid), body)
        except OSError as e:
            error = e.errno if e.errno and e.errno > 0 else errno.EIO
        except Exception as e:  # one failed request must not end the mount
            self.log(f"FUSE request {opcode} failed: {e!r}")
            error = errno.EIO
        parts = payload if isinstance(payload, list) else [payload]
        size = OUT_HEADER.size + (sum(len(p) for p in parts) if not error else 0)
        try:
            os.writev(self.fd, [OUT_HEADER.pack(size, -error, unique), *([] if error else parts)])
        except OSError as e:
            if e.errno == errno.ENODEV:
                return False
            if e.errno != errno.ENOENT:  # ENOENT: the caller was interrupted and has gone
                self.log(f"answering FUSE request {opcode} failed: {e.strerror}")
        return True

    # ---- node ids ------------------------------------------------------------------------------

    def _path(self, nodeid: int) -> str:
        rec = self._paths.get(nodeid)
        if rec is None:
            raise OSError(errno.ESTALE, "unknown node")
        return rec[0]

    def _remember(self, path: str) -> int:
        """The node id for ``path``, counting one more lookup the kernel holds (lock held)."""
        nid = self._ids.get(path)
        if nid is not None:
            self._paths[nid][1] += 1
            return nid
        nid = self._next_id
        self._next_id += 1
        self._paths[nid] = [path, 1]
        self._ids[path] = nid
        return nid

    def _forget(self, nodeid: int, lookups: int) -> None:
        with self._lock:
            rec = self._paths.get(nodeid)
            if rec is None or nodeid == ROOT_ID:
                return
            rec[1] -= lookups
            if rec[1] <= 0:
                del self._paths[nodeid]
                del self._ids[rec[0]]

    # ---- requests ------------------------------------------------------------------------------

    def _init(self, body: memoryview) -> bytes:
        major, minor, max_readahead, flags = INIT_IN.unpack_from(body)
        if major != 7:
            raise OSError(errno.EPROTO, f"FUSE protocol {major}.{minor}")
        granted = flags & _WANTED
        out = INIT_OUT.pack(7, min(minor, PROTOCOL_MINOR), max_readahead, granted,
                            16, 12, MAX_WRITE, 1, MAX_PAGES, 0, 0)
        # the kernel sends INIT once, then requests; init may start loading the index
        threading.Thread(target=self.ops.init, args=("/",), name="fs-init", daemon=True).start()
        return out

    def _entry(self, path: str, st: dict) -> bytes:
        with self._lock:
            nid = self._remember(path)
        valid = st.get("cache_seconds", self.valid)
        return ENTRY_OUT.pack(nid, 0, valid, valid, 0, 0, *_attr(st))

    def _lookup(self, parent: str, body: memoryview) -> bytes:
        name = bytes(body).split(b"\0", 1)[0].decode(_ENC)  # NUL-terminated
        path = _child(parent, name)
        try:
            st = self.ops.getattr(path)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
            # a negative entry: the kernel remembers for a moment that the name is missing (a
            # snapshot may appear under it)
            return ENTRY_OUT.pack(0, 0, NEGATIVE_SECONDS, 0, 0, 0, *_NEGATIVE)
        return self._entry(path, st)

    def _getattr(self, path: str, body: memoryview) -> bytes:
        st = self.ops.getattr(path)
        return ATTR_OUT.pack(st.get("cache_seconds", self.valid), 0, 0, *_attr(st))

    def _readlink(self, path: str, body: memoryview) -> bytes:
        return self.ops.readlink(path).encode(_ENC)

    def _open(self, path: str, body: memoryview) -> bytes:
        fh = self.ops.open(path, OPEN_IN.unpack_from(body)[0])
        # content never changes: pages read by an earlier open stay valid
        return OPEN_OUT.pack(fh, FOPEN_KEEP_CACHE, 0)

    def _read(self, path: str, body: memoryview) -> bytes:
        fh, offset, size = READ_IN.unpack_from(body)
        return self.ops.read(path, size, offset, fh)

    def _release(self, path: str, body: memoryview) -> bytes:
        self.ops.release(path, FH_IN.unpack_from(body)[0])
        return b""

    def _releasedir(self, path: str, body: memoryview) -> bytes:
        self.ops.releasedir(path, FH_IN.unpack_from(body)[0])
        return b""

    def _opendir(self, path: str, body: memoryview) -> bytes:
        return OPEN_OUT.pack(self.ops.opendir(path), 0, 0)

    def _statfs(self, path: str, body: memoryview) -> bytes:
        return STATFS_OUT.pack(0, 0, 0, 0, 0, 4096, 255, 4096, 0)

    def _nothing(self, path: str, body: memoryview) -> bytes:
        return b""

    def _xattr_reply(self, data: bytes, size: int) -> bytes:
        if size == 0:  # the caller asks how big a buffer it needs
            return XATTR_OUT.pack(len(data), 0)
        if len(data) > size:
            raise OSError(errno.ERANGE, "buffer too small")
        return data

    def _getxattr(self, path: str, body: memoryview) -> bytes:
        size = XATTR_IN.unpack_from(body)[0]
        name = bytes(body[XATTR_IN.size:]).split(b"\0", 1)[0].decode(_ENC)
        return self._xattr_reply(self.ops.getxattr(path, name), size)

    def _listxattr(self, path: str, body: memoryview) -> bytes:
        names = b"".join(n.encode(_ENC) + b"\0" for n in self.ops.listxattr(path))
        return self._xattr_reply(names, XATTR_IN.unpack_from(body)[0])

    def _readdir(self, path: str, body: memoryview) -> list[bytes]:
        return self._dirents(path, body, plus=False)

    def _readdirplus(self, path: str, body: memoryview) -> list[bytes]:
        return self._dirents(path, body, plus=True)

    def _dirents(self, path: str, body: memoryview, *, plus: bool) -> list[bytes]:
        """A page of entries from the offset on, as many as fit in the kernel's buffer. With
        ``plus`` each entry that the filesystem has full attributes for carries them and a node
        id (the kernel counts it as a lookup); "." and ".." and entries that would need loading
        (a rendered file's size) go without, and are looked up if ever used."""
        fh, offset, size = READ_IN.unpack_from(body)
        head = ENTRY_OUT.size if plus else 0
        page: list[tuple[str, bytes, dict, int, bool]] = []
        used = 0
        for name, st, next_offset, complete in self.ops.readdir_plus(path, fh, offset):
            raw = name.encode(_ENC)
            rec = head + DIRENT.size + len(raw)
            used += rec + -rec % 8
            if used > size:
                break
            page.append((name, raw, st, next_offset, complete and name not in (".", "..")))
        out: list[bytes] = []
        with self._lock:  # node ids only for what the kernel is sent
            for name, raw, st, next_offset, complete in page:
                if plus:
                    if complete:
                        nid = self._remember(_child(path, name))
                        valid = st.get("cache_seconds", self.valid)
                        out.append(ENTRY_OUT.pack(nid, 0, valid, valid, 0, 0, *_attr(st)))
                    else:
                        out.append(_NO_ENTRY)
                out.append(DIRENT.pack(st["st_ino"], next_offset, len(raw),
                                       (st["st_mode"] >> 12) & 0o17))
                out.append(raw + b"\0" * (-(DIRENT.size + len(raw)) % 8))
        return out


# ---- mounting ----------------------------------------------------------------------------------

def mount(mountpoint: str, options: Iterable[str]) -> int:
    """Mount a FUSE filesystem at ``mountpoint`` with fusermount; the /dev/fuse descriptor."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        env = dict(os.environ, _FUSE_COMMFD=str(theirs.fileno()))
        try:
            proc = subprocess.run(["fusermount", "-o", ",".join(options), "--", mountpoint],
                                  env=env, pass_fds=(theirs.fileno(),), capture_output=True,
                                  text=True, stdin=subprocess.DEVNULL, check=False)
        except FileNotFoundError:
            raise RepoError("FUSE is not available: fusermount is not installed "
                            "(Debian package fuse)") from None
        if proc.returncode != 0:
            why = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
            raise RepoError(f"cannot mount at {mountpoint}: {why.removeprefix('fusermount: ')}")
        theirs.close()
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
    if not fds:
        unmount(mountpoint)
        raise RepoError(f"cannot mount at {mountpoint}: fusermount passed no FUSE device")
    return fds[0]


def unmount(mountpoint: str) -> None:
    """Detach the mount (lazily, as libfuse does on a signal): once no one uses it, the kernel
    ends the connection and the session's workers return."""
    subprocess.run(["fusermount", "-u", "-q", "-z", "--", mountpoint], capture_output=True,
                   stdin=subprocess.DEVNULL, check=False)


def serve(ops: PathFS, mountpoint: str, options: Iterable[str], *, cache_seconds: int,
          log: Callable[[str], None]) -> None:
    """Mount, serve until unmounted; SIGINT, SIGTERM and SIGHUP unmount (when this runs in the
    main thread: elsewhere the caller owns the signals and unmounts)."""
    fd = mount(mountpoint, options)
    session = Session(ops, fd, cache_seconds=cache_seconds, log=log)

    def on_signal(*_: object) -> None:
        unmount(mountpoint)
        session.stop()

    main = threading.current_thread() is threading.main_thread()
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP) if main else ()
    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    try:
        session.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(fd)
