"""Open the kopia repository at a location, if one is there (``mover.opener`` picks the
format). In steps: :func:`find_repository` and :func:`derive_key` need only light modules (the
format blob and the key derivation, which releases the GIL), so they run on the opener's thread
while the caller imports the reader (:func:`import_reader`, which takes about as long as the
key derivation); :func:`finish_opening` builds the reader in the caller's thread."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mover.errors import NotFound
from mover.kopia.format import FormatBlob
from mover.kopia.storage import FORMAT_BLOB, BlobStore, open_store

if TYPE_CHECKING:
    from mover.kopia.view import KopiaView
    from mover.view.cache import BlobCache

Found = tuple[BlobStore, FormatBlob]  # the store and its format blob
Started = tuple[BlobStore, FormatBlob, bytes]  # ... and the format key


def find_repository(location: str) -> Found | None:
    """The store and its format blob; None when the location holds no kopia repository (it
    may hold a restic one)."""
    store = open_store(location)
    try:
        try:
            raw = store.get(FORMAT_BLOB)
        except NotFound:
            store.close()
            return None
        return store, FormatBlob.parse(raw, store.location())
    except BaseException:
        store.close()
        raise


def derive_key(found: Found, password: str) -> Started:
    store, fmt = found
    try:
        return store, fmt, fmt.derive_format_key(password)
    except BaseException:
        store.close()
        raise


def start_opening(location: str, password: str) -> Started | None:
    """The format blob and the password-derived key; None when there is no kopia repository."""
    found = find_repository(location)
    return None if found is None else derive_key(found, password)


def import_reader() -> None:
    """Import what :func:`finish_opening` and the first reads need: the view, the ciphers
    (imported where used, so that listing a restic repository never loads them) and zstd,
    which kopia compresses metadata with by default."""
    import cryptography.exceptions
    import cryptography.hazmat.primitives.ciphers.aead  # noqa: F401
    import zstandard  # noqa: F401

    import mover.kopia.view  # noqa: F401


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
