"""A tiny object store over a BSL prefix: get, put, list, exists, delete.

Two implementations: a local directory (the same layout as the bucket, for tests and for a
bucket copied to disk) and S3 (through `mover.repo.backend.s3client`, so credentials, retries
and errors are the repository backend's). Keys are relative to the prefix and use "/".
Each store also opens the restic repository at one of its sub-prefixes, with the same
settings, since Velero keeps them in the same bucket.
"""

from __future__ import annotations

import builtins
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mover.errors import BackendError, NotFound, RepoError
from mover.repo.backend.base import Backend
from mover.repo.backend.local import LocalBackend, write_atomic

if TYPE_CHECKING:  # boto3 is slow to import: only S3 users pay for it
    from mover.repo.backend.s3client import S3Location, S3Options


def _check_key(key: str) -> str:
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in key.split("/")):
        raise RepoError(f"invalid object key {key!r}")
    return key


class ObjectStore(ABC):
    """Objects below one prefix of a bucket or directory."""

    @abstractmethod
    def location(self) -> str:
        """Where the store is, for messages: a path or ``s3:http://host/bucket/prefix``."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; NotFound when it does not exist."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store the object atomically (a reader sees the old object or the new one)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing one is not an error."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str) -> Iterator[str]:
        """Keys below `prefix` (which ends in "/", or is "" for everything), any depth."""

    @abstractmethod
    def list_dirs(self, prefix: str) -> builtins.list[str]:  # (`list` is the method above)
        """Names of the folders right below `prefix` ("" or ending in "/"), sorted."""

    @abstractmethod
    def repository_backend(self, subprefix: str) -> Backend:
        """A repository backend for ``<prefix>/<subprefix>`` with this store's settings."""

    def close(self) -> None:  # noqa: B027  (an optional hook, not abstract: most have nothing to close)
        """Release connections; the default has nothing to release."""


class LocalStore(ObjectStore):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(root)

    def location(self) -> str:
        return self.root

    def _path(self, key: str) -> str:
        return os.path.join(self.root, *_check_key(key).split("/"))

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(f"{key} not found in {self.root}") from None
        except OSError as e:
            raise BackendError(f"cannot read {path}: {e.strerror}") from None

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            write_atomic(path, data, 0o644)
        except OSError as e:
            raise BackendError(f"cannot write {path}: {e.strerror}") from None

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise BackendError(f"cannot remove {self._path(key)}: {e.strerror}") from None

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))

    def list(self, prefix: str) -> Iterator[str]:
        top = os.path.join(self.root, prefix)
        for dirpath, dirs, files in os.walk(top, onerror=self._walk_error):
            dirs.sort()
            rel = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            for name in sorted(files):
                if "-tmp-" not in name:  # an interrupted put
                    yield name if rel == "." else f"{rel}/{name}"

    @staticmethod
    def _walk_error(e: OSError) -> None:
        if not isinstance(e, (FileNotFoundError, NotADirectoryError)):
            raise BackendError(f"cannot list {e.filename}: {e.strerror}")

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        top = os.path.join(self.root, prefix)
        try:
            with os.scandir(top) as it:
                return sorted(e.name for e in it if e.is_dir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as e:
            raise BackendError(f"cannot list {top}: {e.strerror}") from None

    def repository_backend(self, subprefix: str) -> Backend:
        return LocalBackend(os.path.join(self.root, subprefix))


class S3Store(ObjectStore):
    def __init__(self, location: S3Location, options: S3Options | None = None) -> None:
        from mover.repo.backend.s3client import S3Client

        self.s3 = S3Client(location, options, noun="backup storage location")

    def location(self) -> str:
        return str(self.s3.location)

    def get(self, key: str) -> bytes:
        return self.s3.get(self.s3.key(_check_key(key)))

    def put(self, key: str, data: bytes) -> None:
        self.s3.put(self.s3.key(_check_key(key)), data)

    def delete(self, key: str) -> None:
        self.s3.delete(self.s3.key(_check_key(key)))

    def exists(self, key: str) -> bool:
        try:
            self.s3.size(self.s3.key(_check_key(key)))
        except NotFound:
            return False
        return True

    def list(self, prefix: str) -> Iterator[str]:
        for key, _size in self.s3.list(self.s3.key(prefix)):
            yield self.s3.relpath(key)

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        base = self.s3.key(prefix)  # "<bsl prefix>/<prefix>", or just `prefix` at the root
        return sorted(p[len(base):].rstrip("/") for p in self.s3.list_dirs(base))

    def repository_backend(self, subprefix: str) -> Backend:
        from mover.repo.backend.s3 import S3Backend

        return S3Backend(self.s3.location.child(subprefix), self.s3.options)

    def close(self) -> None:
        self.s3.close()


def s3_options(*, credentials_file: str | None = None, ca_bundle: str | None = None,
               insecure_tls: bool = False) -> S3Options:
    """How to reach an S3 bucket: a Velero credentials file, a CA bundle, TLS checks."""
    from mover.repo.backend.s3client import S3Options  # boto3 is slow to import

    return S3Options(credentials_file=credentials_file, ca_bundle=ca_bundle,
                     insecure_tls=insecure_tls)


def open_store(url: str, options: S3Options | None = None) -> ObjectStore:
    """``s3:...`` (restic's forms) is S3; ``/path`` or ``local:/path`` is a directory."""
    if url.startswith("s3:"):
        from mover.repo.backend.s3client import parse_s3_url

        return S3Store(parse_s3_url(url), options)
    return LocalStore(url.removeprefix("local:"))

