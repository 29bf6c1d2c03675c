"""The narrow interface every storage backend implements (modelled on restic's Backend).

A backend stores opaque files by (type, name). It knows restic's "default" layout (packs under
``data/<2 hex>/``), nothing about encryption or formats. Saves are atomic: a reader sees either
no file or the whole file, never a prefix of it.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from mover.errors import NotFound


class FileType(enum.Enum):
    CONFIG = "config"
    KEY = "keys"
    PACK = "data"
    INDEX = "index"
    SNAPSHOT = "snapshots"
    LOCK = "locks"


@dataclass(frozen=True)
class Handle:
    type: FileType
    name: str = ""  # empty for CONFIG

    def relpath(self) -> str:
        """Path relative to the repository root in restic's default layout."""
        return Layout.DEFAULT.relpath(self)

    def __str__(self) -> str:
        return self.relpath()


class Layout(enum.Enum):
    """Where each type of file lives: restic's "default" layout, or "s3legacy" (singular folder
    names, packs straight under data/), which restic before 0.7 wrote to S3 and restic 0.14
    still reads and writes, locally and on S3."""

    DEFAULT = "default"
    S3LEGACY = "s3legacy"

    def folder(self, t: FileType) -> str:
        return _S3LEGACY_FOLDERS.get(t, t.value) if self is Layout.S3LEGACY else t.value

    def relpath(self, h: Handle) -> str:
        if h.type is FileType.CONFIG:
            return "config"
        if h.type is FileType.PACK and self is Layout.DEFAULT:
            return f"data/{h.name[:2]}/{h.name}"
        return f"{self.folder(h.type)}/{h.name}"


_S3LEGACY_FOLDERS = {FileType.KEY: "key", FileType.SNAPSHOT: "snapshot", FileType.LOCK: "lock"}


class Spool(Protocol):
    """A file being written into the backend part by part (a pack while it fills): readers see
    nothing of it until :meth:`store` gives it its name."""

    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    def digest(self) -> bytes:
        """SHA-256 of everything written so far."""
        ...

    def store(self, h: Handle) -> None:
        """Make the file durable under ``h``, atomically; the spool is done with then."""
        ...

    def discard(self) -> None:
        """Drop what was written (also after a failed :meth:`store`); safe to call twice."""
        ...


class Backend(ABC):
    """Where the files of one repository are stored."""

    _layout: Layout | None = None  # found on first use (see `layout`), or set by create()

    @property
    def layout(self) -> Layout:
        """The repository's layout, found as restic 0.14 finds it: key files under key/ and none
        under keys/ mean s3legacy, anything else the default layout."""
        if self._layout is None:
            legacy = (not self._has_files(Layout.DEFAULT.folder(FileType.KEY))
                      and self._has_files(Layout.S3LEGACY.folder(FileType.KEY)))
            self._layout = Layout.S3LEGACY if legacy else Layout.DEFAULT
        return self._layout

    @abstractmethod
    def _has_files(self, folder: str) -> bool:
        """Whether the folder (relative to the repository root) holds at least one file."""

    @abstractmethod
    def location(self) -> str:
        """Human-readable location for messages, e.g. ``/srv/repo`` or ``s3:http://h/b/p``."""

    @abstractmethod
    def create(self) -> None:
        """Prepare an empty location for a new repository (directories, bucket).

        Raises RepoError if a repository (a ``config`` file) is already there.
        """

    @abstractmethod
    def save(self, h: Handle, data: bytes) -> None:
        """Store ``data`` under ``h`` atomically. Overwriting an existing file is allowed."""

    def save_parts(self, h: Handle, parts: Sequence[bytes | bytearray | memoryview]) -> None:
        """:meth:`save` of the concatenation of ``parts`` (a pack held in memory: its sealed
        blobs, header and length), joined here, on the upload thread that calls this, rather
        than by the blob writer that filled the pack."""
        self.save(h, b"".join(parts))

    def spool(self) -> Spool | None:
        """A new file to write a pack into as it fills, or None when packs are better held in
        memory and saved whole (an object store takes one upload per object)."""
        return None

    @abstractmethod
    def load(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        """Read ``length`` bytes at ``offset`` (all to the end when None).

        Raises NotFound when the file does not exist. Returns fewer bytes only if the file
        is shorter than asked for; callers that need exact lengths check.
        """

    @abstractmethod
    def stat(self, h: Handle) -> int:
        """Size of the file in bytes; NotFound when missing."""

    @abstractmethod
    def remove(self, h: Handle) -> None:
        """Delete the file; missing files are not an error."""

    @abstractmethod
    def list(self, t: FileType) -> Iterator[tuple[str, int]]:
        """Yield ``(name, size)`` for every file of type ``t`` (names only, no paths).

        Temporary files of interrupted saves are never listed.
        """

    def prefetch(self, t: FileType) -> None:  # noqa: B027  (a hint: nothing to do is right)
        """Start reading every file of type ``t`` into memory ahead of its :meth:`load` (the
        page cache of a local disk); may raise BackendError. The default does nothing."""

    def exists(self, h: Handle) -> bool:
        try:
            self.stat(h)
        except NotFound:
            return False
        return True

    def close(self) -> None:  # noqa: B027  (an optional hook, not abstract: most have nothing to close)
        """Release connections and threads; the default has nothing to release."""
