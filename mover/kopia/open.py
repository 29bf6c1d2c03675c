"""Open the kopia repository at a location, if one is there (``mover.opener`` picks the
format)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mover.errors import NotARepository
from mover.kopia.storage import open_store

if TYPE_CHECKING:
    from mover.kopia.view import KopiaView
    from mover.view.cache import BlobCache


def open_kopia_view(location: str, password: str, cache_bytes: int = 64 * 1024 * 1024,
                    cache: BlobCache | None = None) -> KopiaView | None:
    """The kopia repository at ``location``, opened with ``password``; None when the location
    holds no kopia repository (it may hold a restic one)."""
    from mover.kopia.repository import KopiaRepository
    from mover.kopia.view import KopiaView

    store = open_store(location)
    try:
        try:
            fmt = KopiaRepository.read_format(store)
        except NotARepository:
            store.close()
            return None
        repo = KopiaRepository.open_with_key(store, fmt, fmt.derive_format_key(password))
        return KopiaView(repo, cache_bytes, cache)
    except BaseException:
        store.close()
        raise
