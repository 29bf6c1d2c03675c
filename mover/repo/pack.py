"""Pack files: ``blob_1 || ... || blob_n || sealed header || header length (uint32 LE)``."""

from __future__ import annotations

import hashlib
import struct

from mover.errors import IntegrityError
from mover.repo.backend.base import Spool
from mover.repo.blob import BlobType, PackedBlob
from mover.repo.crypto import OVERHEAD, Key

ENTRY_PLAIN = 37  # type(1) length(4) id(32)
ENTRY_COMPRESSED = 41  # type(1) length(4) raw_length(4) id(32)
MAX_HEADER = 16 * 1024 * 1024
TAIL_GUESS = 16 * 1024  # read this much from the end first: holds the header of most packs


class PackBuilder:
    """Collects sealed blobs, in memory or written straight to a ``spool``, and produces the
    finished pack.

    Not thread-safe; the repository serialises access per pack.
    """

    def __init__(self, spool: Spool | None = None) -> None:
        self._parts: list[bytes | bytearray] = []
        self._entries: list[tuple[BlobType, bytes, int, int, int]] = []
        self.size = 0
        self.spool = spool

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, btype: BlobType, blob_id: bytes, sealed: bytes | bytearray, raw_length: int) -> None:
        """Append a sealed blob; ``raw_length`` > 0 marks it compressed."""
        if self.spool is not None:
            self.spool.write(sealed)
        else:
            self._parts.append(sealed)
        self._entries.append((btype, blob_id, self.size, len(sealed), raw_length))
        self.size += len(sealed)

    def finish(self, key: Key) -> tuple[bytes, bytes, list[PackedBlob]]:
        """Returns (pack id, pack bytes, blob entries for the index)."""
        pack_id, parts, blobs = self.finish_parts(key)
        return pack_id, b"".join(parts), blobs

    def finish_parts(self, key: Key) -> tuple[bytes, list[bytes | bytearray], list[PackedBlob]]:
        """:meth:`finish` with the pack as its parts (to be written one after another), hashed
        part by part rather than joined (a join copies 16 MiB holding the GIL). A spooled pack
        gets its header and length written to the spool, is hashed from it, and returns no
        parts."""
        parts, self._parts = self._parts, []
        parts += self._tail(key)
        if self.spool is not None:
            for p in parts:
                self.spool.write(p)
            parts = []
            pack_id = self.spool.digest()
        else:
            h = hashlib.sha256()
            for p in parts:  # each update of 2 KiB or more runs without the GIL
                h.update(p)
            pack_id = h.digest()
        blobs = [PackedBlob(btype, bid, pack_id, off, length, raw)
                 for btype, bid, off, length, raw in self._entries]
        return pack_id, parts, blobs

    def _tail(self, key: Key) -> tuple[bytes, bytes]:
        """The sealed header and its length, which end a pack."""
        header = bytearray()
        for btype, bid, _off, length, raw in self._entries:
            if raw:
                header += struct.pack("<BII", btype + 2, length, raw) + bid
            else:
                header += struct.pack("<BI", btype, length) + bid
        sealed_header = key.seal(bytes(header))
        return sealed_header, struct.pack("<I", len(sealed_header))


def header_length(tail: bytes, pack_size: int, what: str) -> int:
    """The sealed header's length from the last 4 bytes of a pack, validated against its size."""
    if pack_size < ENTRY_PLAIN + OVERHEAD + 4:
        raise IntegrityError(f"{what}: file too short ({pack_size} bytes) to be a pack")
    (hlen,) = struct.unpack("<I", tail[-4:])
    if hlen > MAX_HEADER or hlen + 4 > pack_size or hlen < OVERHEAD:
        raise IntegrityError(f"{what}: invalid header length {hlen} for a pack of {pack_size} bytes")
    return hlen


def parse_header(key: Key, sealed_header: bytes, pack_id: bytes, what: str,
                 allow_compressed: bool = True) -> list[PackedBlob]:
    """Decrypt a pack header and turn its entries into PackedBlobs with implicit offsets."""
    plain = key.open(sealed_header, f"{what} header")
    blobs: list[PackedBlob] = []
    pos = offset = 0
    while pos < len(plain):
        t = plain[pos]
        if t in (0, 1):
            if pos + ENTRY_PLAIN > len(plain):
                raise IntegrityError(f"{what}: truncated header entry")
            (length,) = struct.unpack_from("<I", plain, pos + 1)
            raw, bid = 0, plain[pos + 5:pos + 37]
            pos += ENTRY_PLAIN
        elif t in (2, 3) and allow_compressed:
            if pos + ENTRY_COMPRESSED > len(plain):
                raise IntegrityError(f"{what}: truncated header entry")
            length, raw = struct.unpack_from("<II", plain, pos + 1)
            bid = plain[pos + 9:pos + 41]
            pos += ENTRY_COMPRESSED
        else:
            raise IntegrityError(f"{what}: invalid blob type {t} in header")
        blobs.append(PackedBlob(BlobType(t & 1), bytes(bid), pack_id, offset, length, raw))
        offset += length
    return blobs


def expected_size(blobs: list[PackedBlob]) -> int:
    """Pack size implied by its blob list (restic's check rule)."""
    entries = sum(ENTRY_COMPRESSED if b.compressed else ENTRY_PLAIN for b in blobs)
    return sum(b.length for b in blobs) + entries + OVERHEAD + 4
