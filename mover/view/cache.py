"""Decrypted blobs kept in memory, shared by the views of several repositories."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future


class BlobCache:
    """Decrypted data blobs, least recently used first out, bounded in bytes. Blob ids are the
    hash of the plaintext, so views of several repositories (a bucket's volumes) can share one
    cache and one memory budget."""

    def __init__(self, limit: int = 64 * 1024 * 1024) -> None:
        self.limit = limit
        self._blobs: OrderedDict[bytes, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._loading: dict[bytes, Future[bytes]] = {}

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

    def get_or_load(self, blob_id: bytes, load: Callable[[], bytes]) -> bytes:
        """The cached blob, else ``load()``'s, cached. Callers asking for a blob that another
        thread is already loading wait for that load: read-ahead and the reader it runs ahead
        of must not both fetch and decrypt the same blob."""
        with self._lock:
            data = self._blobs.get(blob_id)
            if data is not None:
                self._blobs.move_to_end(blob_id)
                return data
            pending = self._loading.get(blob_id)
            if pending is None:
                mine = self._loading[blob_id] = Future()
        if pending is not None:
            return pending.result()
        try:
            data = load()
        except BaseException as e:
            with self._lock:
                del self._loading[blob_id]
            mine.set_exception(e)
            raise
        self.put(blob_id, data)  # before the load is forgotten: a new caller finds it cached
        with self._lock:
            del self._loading[blob_id]
        mine.set_result(data)
        return data
