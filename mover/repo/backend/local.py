"""A repository in a local directory, in restic's default layout."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
from collections.abc import Iterator

from mover.errors import BackendError, NotFound, RepoError
from mover.repo.backend.base import Backend, FileType, Handle, Layout

_ID = re.compile(r"^[0-9a-f]{64}$")
_DIRS = ("data", "index", "keys", "locks", "snapshots")


class LocalBackend(Backend):
    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)

    def location(self) -> str:
        return self.path

    def _p(self, h: Handle) -> str:
        if h.type is FileType.CONFIG:  # the same in every layout: no need to find the layout
            return os.path.join(self.path, "config")
        return os.path.join(self.path, self.layout.relpath(h))

    def _has_files(self, folder: str) -> bool:
        return any(e.is_file() for e in _scandir(os.path.join(self.path, folder)))

    def create(self) -> None:
        if os.path.exists(os.path.join(self.path, "config")):
            raise RepoError(f"{self.path}: a repository already exists here")
        if os.path.isdir(self.path) and any(n in _DIRS for n in os.listdir(self.path)):
            raise RepoError(f"{self.path}: holds repository folders but no config; refusing to init over it")
        try:
            os.makedirs(self.path, mode=0o700, exist_ok=True)
            for d in _DIRS:
                os.makedirs(os.path.join(self.path, d), mode=0o700, exist_ok=True)
            for i in range(256):
                os.makedirs(os.path.join(self.path, "data", f"{i:02x}"), mode=0o700, exist_ok=True)
        except OSError as e:
            raise BackendError(f"cannot create repository at {self.path}: {e.strerror}") from None
        self._layout = Layout.DEFAULT

    def save(self, h: Handle, data: bytes) -> None:
        final = self._p(h)
        try:
            write_atomic(final, data, 0o400)
        except OSError as e:
            raise BackendError(f"cannot write {final}: {e.strerror}") from None

    def spool(self) -> PackSpool:
        # among the packs, under the `<name>-tmp-<random>` a killed save leaves, which no
        # lister takes for a pack; renamed into the folder its id names when stored
        where = self._p(Handle(FileType.PACK, secrets.token_hex(32)))
        return PackSpool(self, f"{where}-tmp-{secrets.token_hex(8)}")

    def load(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        try:
            return read_range(self._p(h), offset, length)
        except FileNotFoundError:
            raise NotFound(f"{h} not found in repository {self.path}") from None
        except OSError as e:
            raise BackendError(f"cannot read {self._p(h)}: {e.strerror}") from None

    def stat(self, h: Handle) -> int:
        try:
            return os.stat(self._p(h)).st_size
        except FileNotFoundError:
            raise NotFound(f"{h} not found in repository {self.path}") from None
        except OSError as e:
            raise BackendError(f"cannot stat {self._p(h)}: {e.strerror}") from None

    def remove(self, h: Handle) -> None:
        try:
            os.unlink(self._p(h))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise BackendError(f"cannot remove {self._p(h)}: {e.strerror}") from None

    def list(self, t: FileType) -> Iterator[tuple[str, int]]:
        if t is FileType.CONFIG:
            try:
                yield "", self.stat(Handle(t))
            except NotFound:
                pass
            return
        top = os.path.join(self.path, self.layout.folder(t))
        dirs = [top]
        if t is FileType.PACK and self.layout is Layout.DEFAULT:
            dirs = [e.path for e in _scandir(top) if e.is_dir(follow_symlinks=False)]
        for d in dirs:
            for e in _scandir(d):
                if _ID.match(e.name) and e.is_file(follow_symlinks=False):
                    yield e.name, e.stat(follow_symlinks=False).st_size


    def prefetch(self, t: FileType) -> None:
        # WILLNEED queues the reads and returns: the disk works while the caller does not wait
        for e in _scandir(os.path.join(self.path, self.layout.folder(t))):
            if not _ID.match(e.name):
                continue
            try:
                fd = os.open(e.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue  # removed meanwhile; its load says what is wrong, if it matters
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            except OSError:
                pass
            finally:
                os.close(fd)


class PackSpool:
    """A pack written into the repository's folder as its blobs come, as restic writes packs
    to temporary files: a pack being filled, or waiting to be stored, holds no memory (three of
    them in memory were most of a backup's peak RSS above restic's)."""

    def __init__(self, backend: LocalBackend, tmp: str) -> None:
        self._backend = backend
        self._tmp = tmp
        try:
            self._fd = _create(tmp, os.O_RDWR)
        except OSError as e:
            raise BackendError(f"cannot write {tmp}: {e.strerror}") from None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        try:
            _write_all(self._fd, data)
        except OSError as e:
            raise BackendError(f"cannot write {self._tmp}: {e.strerror}") from None

    def digest(self) -> bytes:
        h = hashlib.sha256()
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        offset = 0
        try:
            while n := os.preadv(self._fd, [buf], offset):
                h.update(view[:n])
                offset += n
        except OSError as e:
            raise BackendError(f"cannot read back {self._tmp}: {e.strerror}") from None
        return h.digest()

    def store(self, h: Handle) -> None:
        final = self._backend._p(h)
        try:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            os.chmod(self._tmp, 0o400)
            try:
                os.replace(self._tmp, final)
            except FileNotFoundError:  # its folder was removed by hand
                os.makedirs(os.path.dirname(final), mode=0o700, exist_ok=True)
                os.replace(self._tmp, final)
            _fsync_dir(os.path.dirname(final))
        except OSError as e:
            self.discard()
            raise BackendError(f"cannot write {final}: {e.strerror}") from None

    def discard(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        try:
            os.unlink(self._tmp)
        except OSError:
            pass


def _create(path: str, access: int) -> int:
    """A new file (never an existing one); missing parent directories are created (e.g. a
    data/xx folder removed by hand)."""
    flags = access | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o600)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        return os.open(path, flags, 0o600)


def _fsync_dir(d: str) -> None:
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def write_atomic(final: str, data: bytes, mode: int) -> None:
    """Write `final` so that readers see no file or all of it, durable once this returns;
    missing parent directories are created (e.g. a data/xx folder removed by hand)."""
    d = os.path.dirname(final)
    tmp = f"{final}-tmp-{secrets.token_hex(8)}"
    try:
        fd = _create(tmp, os.O_WRONLY)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        _fsync_dir(d)
        os.chmod(final, mode)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _scandir(path: str) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except FileNotFoundError:
        return []
    except OSError as e:
        if e.errno == errno.ENOTDIR:
            return []
        raise BackendError(f"cannot list {path}: {e.strerror}") from None


def read_range(path: str, offset: int, length: int | None) -> bytes:
    """``length`` bytes (all when None) from ``offset`` (from the end when negative); fewer
    only at the end of the file. OSError as the system gives it."""
    with open(path, "rb", buffering=0) as f:
        if offset < 0:
            f.seek(offset, os.SEEK_END)
        elif offset:
            f.seek(offset)
        return f.read() if length is None else _read_exact(f, length)


def _read_exact(f, length: int) -> bytes:
    parts = []
    while length > 0:
        b = f.read(length)
        if not b:
            break
        parts.append(b)
        length -= len(b)
    return b"".join(parts)
