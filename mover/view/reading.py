"""Pieces every view's reading is made of, whatever the format: path lookup, read-ahead of a
file's pieces in order, and background prefetch at low priority."""

from __future__ import annotations

import bisect
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import TYPE_CHECKING

from mover.errors import NotFound, RepoError
from mover.view.node import Node
from mover.view.snapshot import Snapshot

if TYPE_CHECKING:
    from mover.view.protocol import SnapshotView

READ_AHEAD_PIECES = 4  # pieces decoded ahead of iter_content's caller
READ_AHEAD_THREADS = 2
PREFETCH_THREADS = 4  # background loads asked for by prefetch (a mount's sequential readers)


def lookup_path(view: SnapshotView, snap: Snapshot, path: str) -> Node:
    """The node at ``path`` ('/' or '' is the root); NotFound names the missing part."""
    node = view.root(snap)
    walked = ""
    for part in [p for p in path.split("/") if p and p != "."]:
        if node.type != "dir":
            raise NotFound(f"{walked or '/'} in snapshot {snap.short_id} is not a directory")
        nxt = find_child(view.list_dir(node), part)
        walked += "/" + part
        if nxt is None:
            raise NotFound(f"path {walked} not found in snapshot {snap.short_id}")
        node = nxt
    return node


def find_child(nodes: list[Node], name: str) -> Node | None:
    """The entry ``name`` of a directory listing (sorted bytewise by name)."""
    key = name.encode("utf-8", "surrogateescape")
    keys = [n.name_bytes for n in nodes]
    i = bisect.bisect_left(keys, key)
    if i < len(nodes) and keys[i] == key:
        return nodes[i]
    return None


def read_ahead(load: Callable[[bytes], bytes], ids: list[bytes]) -> Iterator[bytes]:
    """``load(i)`` for every id, in order, with the next few loading on other threads
    meanwhile (decryption, decompression and hashing run without the GIL), so reading the
    repository overlaps with whatever the caller does with the data."""
    if len(ids) <= 1:
        for b in ids:
            yield load(b)
        return
    it = iter(ids)
    with ThreadPoolExecutor(READ_AHEAD_THREADS, thread_name_prefix="read-ahead") as pool:
        pending: deque[Future[bytes]] = deque(pool.submit(load, b) for b in islice(it, READ_AHEAD_PIECES))
        try:
            while pending:
                data = pending.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(load, nxt))
                yield data
        finally:  # the caller stopped early, or a piece failed: drop what is queued
            for f in pending:
                f.cancel()


def preload(load: Callable[[], object]) -> None:
    """Run ``load`` (an index load) on a thread of its own; a failure is left for the first
    operation that needs what it loads to report."""
    def run() -> None:
        try:
            load()
        except RepoError:
            pass

    threading.Thread(target=run, name="index-load", daemon=True).start()


class Prefetcher:
    """Loads started by ``prefetch``, on a few threads of low priority: a prefetch is a guess,
    and on a busy machine the read being waited for gets the CPU first. Failures are dropped:
    the read that needs the data loads it again and reports them."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, load: Callable[[], object]) -> None:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(PREFETCH_THREADS, thread_name_prefix="prefetch",
                                                initializer=_background_priority)
            self._pool.submit(_quietly, load)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _quietly(load: Callable[[], object]) -> None:
    try:
        load()
    except Exception:  # see Prefetcher
        pass


def _background_priority() -> None:
    # on Linux, PRIO_PROCESS with 0 sets the nice value of the calling thread only
    os.setpriority(os.PRIO_PROCESS, 0, 10)
