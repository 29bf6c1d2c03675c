"""Where a kopia repository's blobs are: a directory in kopia's sharded layout, or S3 keys.

Kopia names every stored file a *blob* (``kopia.repository``, ``p…`` and ``q…`` packs, ``x…``
index blobs). This is the small interface the reader needs from a store: whole or ranged reads
by blob id, and listing by id prefix.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mover.errors import BackendError, NotFound

if TYPE_CHECKING:
    from mover.repo.backend.base import Backend

# The opener's thread reads the format blob through this module before it starts the key
# derivation: restic's backends (dataclasses, enum, secrets) are imported only where used.

FORMAT_BLOB = "kopia.repository"
BLOBCFG_BLOB = "kopia.blobcfg"
_SUFFIX = ".f"  # kopia's filesystem store marks complete blob files so
_SHARDS_FILE = ".shards"


class BlobStore(ABC):
    @abstractmethod
    def location(self) -> str: ...

    @abstractmethod
    def get(self, blob_id: str, offset: int = 0, length: int | None = None) -> bytes:
        """The blob's bytes, or ``length`` of them from ``offset``; NotFound when missing.
        Fewer bytes only when the blob is shorter (callers check lengths)."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(blob id, size) of every blob whose id starts with ``prefix``."""

    def is_local(self) -> bool:
        return False

    def close(self) -> None:  # noqa: B027  (an optional hook, not abstract: most have nothing to close)
        pass


class ShardedFiles(BlobStore):
    """Kopia's filesystem store: blob ``p0123abcd…`` is ``p/012/3abcd….f`` with the default
    shards [1, 3]; the store's ``.shards`` file says what this repository uses."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._default: list[int] = [1, 3]
        self._unsharded = 20
        self._overrides: list[tuple[str, list[int]]] = []
        try:
            with open(os.path.join(self.path, _SHARDS_FILE), "rb") as f:
                p = json.loads(f.read())
            self._default = [int(n) for n in p.get("default") or []]
            self._unsharded = int(p.get("maxNonShardedLength") or 0)
            self._overrides = [(o["prefix"], [int(n) for n in o.get("shards") or []])
                               for o in p.get("overrides") or []]
        except (FileNotFoundError, NotADirectoryError):
            pass  # repositories made before kopia wrote the file use the defaults
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise BackendError(f"{self.path}/{_SHARDS_FILE}: cannot read the shard layout ({e})") from None

    def location(self) -> str:
        return self.path

    def is_local(self) -> bool:
        return True

    def _shards(self, blob_id: str) -> list[int]:
        for prefix, shards in self._overrides:
            if blob_id.startswith(prefix):
                return shards
        return self._default

    def file(self, blob_id: str) -> str:
        parts = []
        rest = blob_id
        if len(blob_id) > self._unsharded:
            for size in self._shards(blob_id):
                if len(rest) <= size:
                    break
                parts.append(rest[:size])
                rest = rest[size:]
        return os.path.join(self.path, *parts, rest + _SUFFIX)

    def get(self, blob_id: str, offset: int = 0, length: int | None = None) -> bytes:
        from mover.repo.backend.local import read_range

        path = self.file(blob_id)
        try:
            return read_range(path, offset, length)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"blob {blob_id} not found in kopia repository {self.path}") from None
        except OSError as e:
            raise BackendError(f"cannot read {path}: {e.strerror}") from None

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        # Walk only the shard directories whose names can lead to ids with this prefix.
        stack = [(self.path, "")]
        while stack:
            d, head = stack.pop()
            try:
                with os.scandir(d) as it:
                    entries = list(it)
            except FileNotFoundError:
                continue
            except OSError as ex:
                raise BackendError(f"cannot list {d}: {ex.strerror}") from None
            for e in entries:
                name = head + e.name
                if e.is_dir(follow_symlinks=False):
                    if name.startswith(prefix) or prefix.startswith(name):
                        stack.append((e.path, name))
                elif e.name.endswith(_SUFFIX) and name.startswith(prefix):
                    yield name[: -len(_SUFFIX)], e.stat(follow_symlinks=False).st_size


class S3Blobs(BlobStore):
    """Kopia's S3 store: blob ``X`` is the object ``<prefix>X`` (flat keys, no suffix). Velero
    gives kopia a prefix ending in "/", so ``velero/kopia/ns/`` holds ``velero/kopia/ns/p…``."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.s3 = backend.s3  # type: ignore[attr-defined]  # an S3Backend

    def location(self) -> str:
        return str(self.s3.location)

    def get(self, blob_id: str, offset: int = 0, length: int | None = None) -> bytes:
        if length == 0:
            return b""
        return self.s3.get(self.s3.key(blob_id), offset, length)

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        for key, size in self.s3.list(self.s3.key(prefix)):
            yield self.s3.relpath(key), size

    def close(self) -> None:
        self._backend.close()


def open_store(location: str) -> BlobStore:
    """``/path`` or ``local:/path`` is a directory; ``s3:...`` is S3 (the restic forms)."""
    if location.startswith("s3:"):
        from mover.repo.backend.s3 import (
            S3Backend,  # boto3 is slow to import; only when needed
        )

        return S3Blobs(S3Backend.from_url(location))
    if location.startswith("local:"):
        location = location[len("local:"):]
    return ShardedFiles(location)


def store_over(backend: Backend) -> BlobStore:
    """The blobs at a restic backend's location (a Velero bucket hands out backends for its
    repository prefixes, with its S3 settings)."""
    from mover.repo.backend.local import LocalBackend

    if isinstance(backend, LocalBackend):
        return ShardedFiles(backend.path)
    if hasattr(backend, "s3"):
        return S3Blobs(backend)
    raise TypeError(f"no kopia store over {type(backend).__name__}")
