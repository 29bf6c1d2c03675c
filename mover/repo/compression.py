"""zstd framing for blobs and for "unpacked" files (index, snapshots, locks) in version 2."""

from __future__ import annotations

import threading

import zstandard

from mover.errors import IntegrityError

UNPACKED_V2 = 0x02
LEVEL = 3  # restic's "auto" compression is klauspost SpeedDefault, about zstd level 3

_local = threading.local()


def _cctx() -> zstandard.ZstdCompressor:
    # Contexts are not thread-safe; one per thread keeps the parallel archiver lock-free.
    c = getattr(_local, "cctx", None)
    if c is None:
        c = _local.cctx = zstandard.ZstdCompressor(level=LEVEL)
    return c


def _dctx() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "dctx", None)
    if d is None:
        d = _local.dctx = zstandard.ZstdDecompressor()
    return d


def compress(data: bytes | memoryview) -> bytes:
    return _cctx().compress(data)


def decompress(data: bytes | bytearray | memoryview, size: int, what: str) -> bytes:
    """Decompress one zstd frame whose plaintext is ``size`` bytes.

    restic's encoder omits the content size for small inputs, so the expected size is passed in.
    """
    try:
        out = _dctx().decompress(data, max_output_size=max(size, 1))
    except zstandard.ZstdError as e:
        raise IntegrityError(f"{what}: cannot decompress: {e}") from None
    if len(out) != size:
        raise IntegrityError(f"{what}: decompressed to {len(out)} bytes, expected {size}")
    return out


def encode_unpacked(json_bytes: bytes, repo_version: int) -> bytes:
    """Plaintext of an index/snapshot/lock file: raw JSON in v1, version byte + zstd in v2."""
    if repo_version < 2:
        return json_bytes
    return bytes([UNPACKED_V2]) + compress(json_bytes)


def decode_unpacked(plaintext: bytes, what: str) -> bytes:
    if not plaintext or plaintext[0] in b"{[":
        return plaintext
    if plaintext[0] != UNPACKED_V2:
        raise IntegrityError(f"{what}: unsupported encoding format byte 0x{plaintext[0]:02x}")
    try:
        return _dctx().decompressobj().decompress(plaintext[1:])
    except zstandard.ZstdError as e:
        raise IntegrityError(f"{what}: cannot decompress: {e}") from None
