"""Storage backends: where a repository's files live (a local directory, S3)."""

from mover.repo.backend.base import Backend, FileType, Handle, Layout

__all__ = ["Backend", "FileType", "Handle", "Layout"]
