""":class:`mover.view.SnapshotView` over a restic-format repository."""

from __future__ import annotations

import bisect
import functools
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import AbstractContextManager

from mover.errors import NotFound
from mover.progress import Counters
from mover.repo.backend import FileType
from mover.repo.blob import BlobType
from mover.repo.lock import Lock
from mover.repo.repository import Repository
from mover.view.cache import BlobCache
from mover.view.node import Node
from mover.view.protocol import RestoreResult
from mover.view.reading import Prefetcher, lookup_path, preload, read_ahead
from mover.view.snapshot import Snapshot


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
        self._snaps: dict[str, Snapshot] | None = None  # by file name, as last listed
        self._prefetcher = Prefetcher()

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
        return lookup_path(self, snap, path)

    # ---- file contents ------------------------------------------------------------------------

    def _blob(self, blob_id: bytes) -> bytes:
        """One data blob, decrypted, through the cache."""
        return self.cache.get_or_load(blob_id, lambda: self._repo.load_blob(BlobType.DATA, blob_id))

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
        while i < len(content) and offs[i] < end:
            if self.cache.get(content[i]) is None:
                self._prefetcher.submit(functools.partial(self._blob, content[i]))
            i += 1

    def iter_content(self, node: Node) -> Iterator[bytes]:
        """A file's bytes blob by blob, in order, the next few read and decoded meanwhile."""
        return read_ahead(lambda b: self._repo.load_blob(BlobType.DATA, b), node.content or [])

    # ---- long work ----------------------------------------------------------------------------

    def preload(self) -> None:
        preload(lambda: self._repo.index)  # the property loads it

    def read_lock(self) -> AbstractContextManager[None]:
        return _Held(Lock(self._repo, exclusive=False))

    def restore(self, node: Node, dest: str, counters: Counters | None = None, *,
                cancel: threading.Event | None = None,
                workers: int | None = None) -> RestoreResult:
        from mover.restorer import restore  # the restorer is only needed by restores

        return restore(self._repo, node, dest, counters, workers=workers, cancel=cancel)

    def close(self) -> None:
        self._prefetcher.close()
        self._repo.close()


class _Held(AbstractContextManager[None]):
    """A restic lock as the protocol's context manager: taken on entry, removed on exit."""

    def __init__(self, lock: Lock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


