"""The read side every browser uses: snapshots, directory listings, byte ranges of files.

The TUI, the FUSE filesystem and ``kbrowse ls/cat/cp`` only talk to :class:`SnapshotView`, so
another repository format (kopia) can later stand beside restic's without touching them.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import Iterator, Protocol

from mover.repo.blob import BlobType
from mover.repo.errors import NotFound
from mover.repo.repository import Repository
from mover.repo.snapshot import Snapshot
from mover.repo.tree import Node


READ_AHEAD_BLOBS = 4  # blobs (~1 MiB each, 8 MiB at most) decoded ahead of iter_content's caller
READ_AHEAD_THREADS = 2


class SnapshotView(Protocol):
    def location(self) -> str: ...
    def snapshots(self) -> list[Snapshot]: ...
    def find_snapshot(self, ref: str) -> Snapshot: ...
    def root(self, snap: Snapshot) -> Node: ...
    def list_dir(self, node: Node) -> list[Node]: ...
    def lookup(self, snap: Snapshot, path: str) -> Node: ...
    def read(self, node: Node, offset: int, size: int) -> bytes: ...
    def iter_content(self, node: Node) -> Iterator[bytes]: ...


class BlobCache:
    """Decrypted data blobs, least recently used first out, bounded in bytes. Blob ids are the
    hash of the plaintext, so views of several repositories (a bucket's volumes) can share one
    cache and one memory budget."""

    def __init__(self, limit: int = 64 * 1024 * 1024) -> None:
        self.limit = limit
        self._blobs: OrderedDict[bytes, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, blob_id: bytes) -> bytes | None:
        with self._lock:
            data = self._blobs.get(blob_id)
            if data is not None:
                self._blobs.move_to_end(blob_id)
            return data

    def put(self, blob_id: bytes, data: bytes) -> None:
        with self._lock:
            if blob_id in self._blobs:
                return
            self._blobs[blob_id] = data
            self._bytes += len(data)
            while self._bytes > self.limit and len(self._blobs) > 1:
                _, old = self._blobs.popitem(last=False)
                self._bytes -= len(old)


class RepositoryView:
    """:class:`SnapshotView` over a restic-format repository, with a byte-bounded blob cache
    (its own of ``cache_bytes``, or a shared ``cache``)."""

    def __init__(self, repo: Repository, cache_bytes: int = 64 * 1024 * 1024,
                 cache: BlobCache | None = None) -> None:
        self.repo = repo
        self.cache = cache if cache is not None else BlobCache(cache_bytes)
        self._lock = threading.Lock()
        self._offsets: OrderedDict[tuple[bytes, ...], list[int]] = OrderedDict()
        self._loading: dict[bytes, Future[bytes]] = {}

    def location(self) -> str:
        return self.repo.backend.location()

    def snapshots(self) -> list[Snapshot]:
        return self.repo.snapshots()

    def find_snapshot(self, ref: str) -> Snapshot:
        return self.repo.find_snapshot(ref)

    def root(self, snap: Snapshot) -> Node:
        return Node(name="", type="dir", mode=0o755 | (1 << 31), mtime=snap.time, atime=snap.time,
                    ctime=snap.time, subtree=snap.tree)

    def list_dir(self, node: Node) -> list[Node]:
        if node.type != "dir" or node.subtree is None:
            raise NotFound(f"{node.name or '/'} is not a directory")
        return self.repo.load_tree(node.subtree)

    def lookup(self, snap: Snapshot, path: str) -> Node:
        """The node at ``path`` ('/' or '' is the root); NotFound names the missing part."""
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

    def blob(self, blob_id: bytes) -> bytes:
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
            data = self.repo.load_blob(BlobType.DATA, blob_id)
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

    def blob_offsets(self, node: Node) -> list[int]:
        """Start offset of every content blob of a file, from the index (no data is read)."""
        key = tuple(node.content or ())
        with self._lock:
            offs = self._offsets.get(key)
        if offs is None:
            offs, pos = [], 0
            for b in node.content or []:
                offs.append(pos)
                pos += self.repo.plain_size(BlobType.DATA, b)
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
        offs = self.blob_offsets(node)
        i = bisect.bisect_right(offs, offset) - 1
        out = bytearray()
        end = min(offset + size, node.size)
        while i < len(content) and offs[i] < end:
            data = self.blob(content[i])
            lo = max(offset - offs[i], 0)
            hi = min(end - offs[i], len(data))
            out += data[lo:hi]
            i += 1
        return bytes(out)

    def iter_content(self, node: Node) -> Iterator[bytes]:
        """A file's bytes blob by blob, in order. The next few blobs are read and decoded on
        other threads meanwhile (decryption, decompression and hashing run without the GIL),
        so reading the repository overlaps with whatever the caller does with the data."""
        content = node.content or []
        if len(content) <= 1:
            for b in content:
                yield self.repo.load_blob(BlobType.DATA, b)
            return
        load = self.repo.load_blob
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


def _find(nodes: list[Node], name: str) -> Node | None:
    # trees are sorted bytewise by name
    key = name.encode("utf-8", "surrogateescape")
    keys = [n.name_bytes for n in nodes]
    i = bisect.bisect_left(keys, key)
    if i < len(nodes) and keys[i] == key:
        return nodes[i]
    return None
