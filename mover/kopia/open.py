"""Open the kopia repository at a location, if one is there (``mover.opener`` picks the
format). In two steps: :func:`start_opening` needs only light modules (the format blob and the
key derivation, which releases the GIL), so it runs on the opener's thread while the command
imports the rest; :func:`finish_opening` builds the reader in the caller's thread."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mover.errors import NotFound
from mover.kopia.format import FormatBlob
from mover.kopia.storage import FORMAT_BLOB, BlobStore, open_store

if TYPE_CHECKING:
    from mover.kopia.view import KopiaView
    from mover.view.cache import BlobCache

Started = tuple[BlobStore, FormatBlob, bytes]  # the store, its format blob, the format key


def start_opening(location: str, password: str) -> Started | None:
    """The format blob and the password-derived key; None when the location holds no kopia
    repository (it may hold a restic one)."""
    store = open_store(location)
    try:
        try:
            raw = store.get(FORMAT_BLOB)
        except NotFound:
            store.close()
            return None
        fmt = FormatBlob.parse(raw, store.location())
        return store, fmt, fmt.derive_format_key(password)
    except BaseException:
        store.close()
        raise


def finish_opening(started: Started, cache_bytes: int = 64 * 1024 * 1024,
                   cache: BlobCache | None = None) -> KopiaView:
    from mover.kopia.repository import KopiaRepository
    from mover.kopia.view import KopiaView

    store, fmt, key = started
    try:
        return KopiaView(KopiaRepository.open_with_key(store, fmt, key), cache_bytes, cache)
    except BaseException:
        store.close()
        raise


def open_kopia_view(location: str, password: str, cache_bytes: int = 64 * 1024 * 1024,
                    cache: BlobCache | None = None) -> KopiaView | None:
    started = start_opening(location, password)
    return None if started is None else finish_opening(started, cache_bytes, cache)
