""":class:`mover.view.SnapshotView` over a restic-format repository."""

from __future__ import annotations

import bisect
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from itertools import islice

from mover.errors import NotFound, RepoError
from mover.repo.backend import FileType
from mover.repo.blob import BlobType
from mover.repo.lock import Lock
from mover.repo.repository import Repository
from mover.progress import Counters
from mover.view.cache import BlobCache
from mover.view.node import Node
from mover.view.protocol import RestoreResult
from mover.view.snapshot import Snapshot

READ_AHEAD_BLOBS = 4  # blobs (~1 MiB each, 8 MiB at most) decoded ahead of iter_content's caller
READ_AHEAD_THREADS = 2
PREFETCH_THREADS = 4  # background loads asked for by prefetch (a mount's sequential readers)


class RepositoryView:
    """:class:`mover.view.SnapshotView` over a restic-format repository, with a byte-bounded
    blob cache (its own of ``cache_bytes``, or a shared ``cache``). Delegates to the
    repository's index, the restorer and restic's locks."""

    def __init__(self, repo: Repository, cache_bytes: int = 64 * 1024 * 1024,
                 cache: BlobCache | None = None) -> None:
        self._repo = repo
        self.cache = cache if cache is not None else BlobCache(cache_bytes)
        self._lock = threading.Lock()
        self._offsets: OrderedDict[tuple[bytes, ...], list[int]] = OrderedDict()
        self._loading: dict[bytes, Future[bytes]] = {}
        self._snaps: dict[str, Snapshot] | None = None  # by file name, as last listed
        self._prefetch_pool: ThreadPoolExecutor | None = None

    def location(self) -> str:
        return self._repo.backend.location()

    # ---- snapshots ----------------------------------------------------------------------------

    def snapshots(self) -> list[Snapshot]:
        with self._lock:
            snaps = self._snaps
        if snaps is None:
            self.refresh()
            with self._lock:
                snaps = self._snaps or {}
        return sorted(snaps.values(), key=lambda s: (s.time, s.id))

    def refresh(self) -> bool:
        names = {name for name, _ in self._repo.backend.list(FileType.SNAPSHOT)}
        with self._lock:
            known = self._snaps
        if known is not None and names == known.keys():
            return False
        if known is not None:
            self._repo.refresh_index()  # the new snapshots' trees and data are in new index files
        old = known or {}
        new = [n for n in names if n not in old]
        loaded = dict(zip(new, self._repo.load_snapshots(new), strict=True))
        with self._lock:
            self._snaps = {n: old.get(n) or loaded[n] for n in names}
        return True

    def matching_snapshots(self, prefix: str) -> list[Snapshot]:
        prefix = prefix.lower()
        with self._lock:
            known = self._snaps
        if known is not None:
            return [s for n, s in known.items() if n.startswith(prefix)]
        names = [n for n, _ in self._repo.backend.list(FileType.SNAPSHOT) if n.startswith(prefix)]
        return self._repo.load_snapshots(names)

    def find_snapshot(self, ref: str) -> Snapshot:
        with self._lock:
            known = self._snaps
        return self._repo.find_snapshot(ref, None if known is None else known.values())

    # ---- trees --------------------------------------------------------------------------------

    def root(self, snap: Snapshot) -> Node:
        # read-only, as restic's mount shows a snapshot (dr-xr-xr-x): nothing was stored for it
        return Node(name="", type="dir", mode=0o555 | (1 << 31), mtime=snap.time, atime=snap.time,
                    ctime=snap.time, subtree=snap.tree)

    def list_dir(self, node: Node) -> list[Node]:
        if node.type != "dir" or node.subtree is None:
            raise NotFound(f"{node.name or '/'} is not a directory")
        return self._repo.load_tree(node.subtree)

    def lookup(self, snap: Snapshot, path: str) -> Node:
        node = self.root(snap)
        walked = ""
        for part in [p for p in path.split("/") if p and p != "."]:
            if node.type != "dir":
                raise NotFound(f"{walked or '/'} in snapshot {snap.short_id} is not a directory")
            children = self.list_dir(node)
            nxt = _find(children, part)
            walked += "/" + part
            if nxt is None:
                raise NotFound(f"path {walked} not found in snapshot {snap.short_id}")
            node = nxt
        return node

    # ---- file contents ------------------------------------------------------------------------

    def _blob(self, blob_id: bytes) -> bytes:
        """One data blob, decrypted, through the cache. Callers asking for a blob that another
        thread is already loading wait for that load: read-ahead and the reader it runs ahead
        of must not both fetch and decrypt the same blob."""
        with self._lock:
            # under the lock: a load that ends meanwhile puts its blob in the cache first
            data = self.cache.get(blob_id)
            if data is not None:
                return data
            pending = self._loading.get(blob_id)
            if pending is None:
                mine = self._loading[blob_id] = Future()
        if pending is not None:
            return pending.result()
        try:
            data = self._repo.load_blob(BlobType.DATA, blob_id)
        except BaseException as e:
            with self._lock:
                del self._loading[blob_id]
            mine.set_exception(e)
            raise
        self.cache.put(blob_id, data)
        with self._lock:
            del self._loading[blob_id]
        mine.set_result(data)
        return data

    def _blob_offsets(self, node: Node) -> list[int]:
        """Start offset of every content blob of a file, from the index (no data is read)."""
        key = tuple(node.content or ())
        with self._lock:
            offs = self._offsets.get(key)
        if offs is None:
            offs, pos = [], 0
            for b in node.content or []:
                offs.append(pos)
                pos += self._repo.plain_size(BlobType.DATA, b)
            with self._lock:
                self._offsets[key] = offs
                while len(self._offsets) > 1024:
                    self._offsets.popitem(last=False)
        return offs

    def read(self, node: Node, offset: int, size: int) -> bytes:
        if node.type != "file":
            raise NotFound(f"{node.name} is not a regular file")
        content = node.content or []
        if not content or offset >= node.size or size <= 0:
            return b""
        offs = self._blob_offsets(node)
        i = bisect.bisect_right(offs, offset) - 1
        out = bytearray()
        end = min(offset + size, node.size)
        while i < len(content) and offs[i] < end:
            data = self._blob(content[i])
            lo = max(offset - offs[i], 0)
            hi = min(end - offs[i], len(data))
            out += data[lo:hi]
            i += 1
        return bytes(out)

    def prefetch(self, node: Node, offset: int, size: int) -> None:
        content = node.content or []
        if node.type != "file" or not content or size <= 0 or offset >= node.size:
            return
        offs = self._blob_offsets(node)
        i = max(bisect.bisect_right(offs, offset) - 1, 0)
        end = offset + size
        with self._lock:
            if self._prefetch_pool is None:
                self._prefetch_pool = ThreadPoolExecutor(
                    PREFETCH_THREADS, thread_name_prefix="prefetch", initializer=_background_priority)
            pool = self._prefetch_pool
        while i < len(content) and offs[i] < end:
            if self.cache.get(content[i]) is None:
                pool.submit(self._quiet_blob, content[i])
            i += 1

    def _quiet_blob(self, blob_id: bytes) -> None:
        try:
            self._blob(blob_id)
        except Exception:
            pass  # the read that needs this blob fetches it again and reports the error

    def iter_content(self, node: Node) -> Iterator[bytes]:
        """A file's bytes blob by blob, in order. The next few blobs are read and decoded on
        other threads meanwhile (decryption, decompression and hashing run without the GIL),
        so reading the repository overlaps with whatever the caller does with the data."""
        content = node.content or []
        if len(content) <= 1:
            for b in content:
                yield self._repo.load_blob(BlobType.DATA, b)
            return
        load = self._repo.load_blob
        ids = iter(content)
        with ThreadPoolExecutor(READ_AHEAD_THREADS, thread_name_prefix="read-ahead") as pool:
            pending: deque[Future[bytes]] = deque(
                pool.submit(load, BlobType.DATA, b) for b in islice(ids, READ_AHEAD_BLOBS))
            try:
                while pending:
                    data = pending.popleft().result()
                    nxt = next(ids, None)
                    if nxt is not None:
                        pending.append(pool.submit(load, BlobType.DATA, nxt))
                    yield data
            finally:  # the caller stopped early, or a blob failed: drop what is queued
                for f in pending:
                    f.cancel()

    # ---- long work ----------------------------------------------------------------------------

    def preload(self) -> None:
        threading.Thread(target=self._load_index, name="index-load", daemon=True).start()

    def _load_index(self) -> None:
        try:
            _ = self._repo.index  # the property loads it
        except RepoError:
            pass  # reported by the first operation that needs it

    def read_lock(self) -> AbstractContextManager[None]:
        return _Held(Lock(self._repo, exclusive=False))

    def restore(self, node: Node, dest: str, counters: Counters | None = None, *,
                cancel: threading.Event | None = None,
                workers: int | None = None) -> RestoreResult:
        from mover.restorer import restore  # the restorer is only needed by restores

        return restore(self._repo, node, dest, counters, workers=workers, cancel=cancel)

    def close(self) -> None:
        with self._lock:
            pool, self._prefetch_pool = self._prefetch_pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        self._repo.close()


class _Held(AbstractContextManager[None]):
    """A restic lock as the protocol's context manager: taken on entry, removed on exit."""

    def __init__(self, lock: Lock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def _background_priority() -> None:
    # read-ahead is a guess: on a busy machine the request being waited for gets the CPU first
    # (on Linux, PRIO_PROCESS with 0 sets the nice value of the calling thread only)
    os.setpriority(os.PRIO_PROCESS, 0, 10)


def _find(nodes: list[Node], name: str) -> Node | None:
    # trees are sorted bytewise by name
    key = name.encode("utf-8", "surrogateescape")
    keys = [n.name_bytes for n in nodes]
    i = bisect.bisect_left(keys, key)
    if i < len(nodes) and keys[i] == key:
        return nodes[i]
    return None
