"""Decrypted blobs kept in memory, shared by the views of several repositories."""

from __future__ import annotations

import threading
from collections import OrderedDict


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
