"""Open whatever repository is at a location, as a :class:`mover.view.SnapshotView`.

The one place that knows which formats exist: kbrowse names a location and a password and gets
a view, whichever format is there. Opening starts on a thread (the key derivation releases the
GIL), so a command imports what it needs meanwhile (see :class:`mover.repo.open.Opening`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mover.repo.open import Opening

if TYPE_CHECKING:
    from mover.view import BlobCache, SnapshotView

DEFAULT_CACHE_BYTES = 64 * 1024 * 1024


class ViewOpening:
    """A repository being opened on a thread of its own; :meth:`result` waits for its view."""

    def __init__(self, location: str, password: str, *, cache_bytes: int = DEFAULT_CACHE_BYTES,
                 cache: BlobCache | None = None) -> None:
        self.location = location
        self.password = password
        self._cache_bytes = cache_bytes
        self._cache = cache
        self._opening = Opening(location, password)
        self._view: SnapshotView | None = None

    def result(self) -> SnapshotView:
        if self._view is None:
            from mover.repo.view import RepositoryView  # heavy: imported meanwhile by the caller

            self._view = RepositoryView(self._opening.result(), self._cache_bytes, self._cache)
        return self._view


def open_view(location: str, password: str, *, cache_bytes: int = DEFAULT_CACHE_BYTES,
              cache: BlobCache | None = None) -> SnapshotView:
    return ViewOpening(location, password, cache_bytes=cache_bytes, cache=cache).result()
