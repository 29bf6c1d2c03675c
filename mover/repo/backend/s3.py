"""S3 backend: a restic repository in a bucket, with restic's repository strings and layout.

Objects are named ``<prefix>/<relpath>`` (no directory markers), exactly as restic's S3
backend writes them, so restic and this backend can share a repository. A PUT is atomic on
S3, so saves need no temporary objects. Connection, credentials, retries and error messages
live in `mover.repo.backend.s3client`, shared with Velero's object store.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from mover.errors import RepoError
from mover.repo.backend.base import Backend, FileType, Handle, Layout
from mover.repo.backend.s3client import (
    BucketNotFound,
    RetryPolicy,
    S3Client,
    S3Location,
    S3Options,
    parse_s3_url,
    resolve_region,
)

# Re-exported: callers name the S3 pieces through the backend module.
__all__ = [
    "BucketNotFound",
    "RetryPolicy",
    "S3Backend",
    "S3Location",
    "S3Options",
    "parse_s3_url",
    "resolve_region",
]


class S3Backend(Backend):
    """A repository in an S3 bucket (AWS or an S3-compatible server)."""

    def __init__(self, location: S3Location, options: S3Options | None = None) -> None:
        self.s3 = S3Client(location, options, noun="repository")
        self._client = self.s3.client  # the boto3 client (tests stub it)

    @classmethod
    def from_url(cls, url: str, options: S3Options | None = None, **settings: Any) -> S3Backend:
        """A backend for a restic repository string such as ``s3:http://host:9000/b/p``;
        `settings` override fields of `options` (e.g. ``retry=``, ``credentials_file=``)."""
        return cls(parse_s3_url(url), replace(options or S3Options(), **settings))

    @property
    def s3_location(self) -> S3Location:
        return self.s3.location

    @property
    def retry(self) -> RetryPolicy:
        return self.s3.retry

    @property
    def region(self) -> str:
        return self.s3.region

    # -- Backend interface -----------------------------------------------------------------

    def location(self) -> str:
        return str(self.s3_location)

    def create(self) -> None:
        self.s3.ensure_bucket()
        if self.exists(Handle(FileType.CONFIG)):
            raise RepoError(
                f"a repository already exists at {self.s3_location} (it has a config file): "
                "choose another bucket or prefix"
            )
        self._layout = Layout.DEFAULT

    def save(self, h: Handle, data: bytes) -> None:
        self.s3.put(self._key(h), data)

    def load(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"bad range offset={offset} length={length} for {h}")
        if length == 0:
            self.stat(h)  # still report a missing file
            return b""
        return self.s3.get(self._key(h), offset, length)

    def stat(self, h: Handle) -> int:
        return self.s3.size(self._key(h))

    def remove(self, h: Handle) -> None:
        self.s3.delete(self._key(h))

    def list(self, t: FileType) -> Iterator[tuple[str, int]]:
        if t is FileType.CONFIG:
            raise ValueError("the config is a single file: use stat(), not list()")
        directory = self.s3.key(self.layout.folder(t) + "/")
        for key, size in self.s3.list(directory):
            name = key[len(directory) :]
            if t is FileType.PACK:
                # Packs sit one level deeper (data/ab/ab...); yield the id only.
                name = name.rpartition("/")[2]
            if name and "/" not in name:
                yield name, size

    def close(self) -> None:
        self.s3.close()

    def _key(self, h: Handle) -> str:
        if h.type is FileType.CONFIG:  # the same in every layout: no need to find the layout
            return self.s3.key("config")
        return self.s3.key(self.layout.relpath(h))

    def _has_files(self, folder: str) -> bool:
        return self.s3.any_key(self.s3.key(folder + "/"))
