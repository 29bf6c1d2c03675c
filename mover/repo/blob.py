"""Blob identities and their place in a pack."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class BlobType(enum.IntEnum):
    DATA = 0
    TREE = 1

    @property
    def json_name(self) -> str:
        return "data" if self is BlobType.DATA else "tree"


@dataclass(frozen=True, slots=True)
class PackedBlob:
    """Where a blob lives: ``length`` is the stored (encrypted) size, ``raw_length`` the plaintext.

    ``raw_length`` is 0 for uncompressed blobs, as in restic's index, where the plaintext size is
    ``length - 32``.
    """

    type: BlobType
    id: bytes
    pack: bytes
    offset: int
    length: int
    raw_length: int = 0

    @property
    def compressed(self) -> bool:
        return self.raw_length > 0

    @property
    def plain_length(self) -> int:
        return self.raw_length if self.raw_length else self.length - 32
