"""Open whatever repository is at a location, as a :class:`mover.view.SnapshotView`.

The one place that knows which formats exist: kbrowse names a location and a password and gets
a view, whichever format is there -- kopia's when the location holds ``kopia.repository``,
restic's otherwise. Opening starts on a thread (the key derivation releases the GIL), so a
command imports what it needs meanwhile (see :class:`mover.repo.open.Opening`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mover.kopia.open import Started
    from mover.repo.open import Opening
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
        self._opening: Opening | None = None
        self._is_kopia = False
        self._kopia: Started | None = None
        self._error: BaseException | None = None
        self._view: SnapshotView | None = None
        self._format_read = threading.Event()  # set once the format is known (or opening failed)
        self._thread = threading.Thread(target=self._run, name="open-view", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            # light modules only on this thread: the caller imports the heavy ones meanwhile
            from mover.kopia.open import derive_key, find_repository

            found = find_repository(self.location)
            self._is_kopia = found is not None
            self._format_read.set()
            if found is not None:
                self._kopia = derive_key(found, self.password)
            else:
                from mover.repo.open import Opening  # restic's key files: not read for kopia

                self._opening = Opening(self.location, self.password)
        except BaseException as e:  # raised again in the caller's thread
            self._error = e
        finally:
            self._format_read.set()

    def result(self) -> SnapshotView:
        if self._view is None:
            self._format_read.wait()
            if self._is_kopia:  # its key is being derived: import its reader meanwhile
                from mover.kopia.open import import_reader

                import_reader()
            self._thread.join()
            if self._error is not None:
                raise self._error
            if self._kopia is not None:
                from mover.kopia.open import finish_opening

                self._view = finish_opening(self._kopia, self._cache_bytes, self._cache)
            else:
                from mover.repo.view import RepositoryView  # heavy: imported meanwhile by the caller

                assert self._opening is not None
                self._view = RepositoryView(self._opening.result(), self._cache_bytes, self._cache)
        return self._view


def open_view(location: str, password: str, *, cache_bytes: int = DEFAULT_CACHE_BYTES,
              cache: BlobCache | None = None) -> SnapshotView:
    return ViewOpening(location, password, cache_bytes=cache_bytes, cache=cache).result()
