"""Storage backends: where a repository's files live (a local directory, S3)."""

from mover.repo.backend.base import Backend, FileType, Handle

__all__ = ["Backend", "FileType", "Handle"]
