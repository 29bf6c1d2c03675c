"""Turn a repository string (restic's conventions) into a backend and an open repository."""

from __future__ import annotations

from mover.repo.backend import Backend
from mover.repo.backend.local import LocalBackend
from mover.repo.repository import Repository


def open_backend(location: str) -> Backend:
    """``/path`` or ``local:/path`` is a directory; ``s3:...`` is S3 (restic's forms)."""
    if location.startswith("s3:"):
        from mover.repo.backend.s3 import S3Backend  # boto3 is slow to import; only when needed

        return S3Backend.from_url(location)
    if location.startswith("local:"):
        location = location[len("local:"):]
    return LocalBackend(location)


def open_repository(location: str, password: str) -> Repository:
    return Repository.open(open_backend(location), password)
