"""The blob index: which pack holds a blob, at what offset and length.

Index files are JSON (``{"supersedes": [...], "packs": [{"id", "blobs": [...]}]}``); the
in-memory index merges all of them. Entries are kept as small tuples keyed by the binary blob id;
pack ids are interned in a list so each entry holds an int, not a 32-byte string.
"""

from __future__ import annotations

import json
import threading
from typing import Iterable, Iterator

from mover.repo import gojson
from mover.repo.blob import BlobType, PackedBlob
from mover.repo.errors import IntegrityError


class Index:
    """Thread-safe map (type, blob id) -> location, merged from every index file."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._packs: list[bytes] = []
        self._pack_no: dict[bytes, int] = {}
        # per type: blob id -> (pack number, offset, length, raw_length)
        self._blobs: tuple[dict[bytes, tuple[int, int, int, int]], ...] = ({}, {})

    def __len__(self) -> int:
        return len(self._blobs[0]) + len(self._blobs[1])

    def add(self, blobs: Iterable[PackedBlob]) -> None:
        with self._lock:
            for b in blobs:
                no = self._pack_no.get(b.pack)
                if no is None:
                    no = self._pack_no[b.pack] = len(self._packs)
                    self._packs.append(b.pack)
                self._blobs[b.type].setdefault(b.id, (no, b.offset, b.length, b.raw_length))

    def has(self, btype: BlobType, blob_id: bytes) -> bool:
        return blob_id in self._blobs[btype]

    def get(self, btype: BlobType, blob_id: bytes) -> PackedBlob | None:
        e = self._blobs[btype].get(blob_id)
        if e is None:
            return None
        return PackedBlob(btype, blob_id, self._packs[e[0]], e[1], e[2], e[3])

    def packs(self) -> set[bytes]:
        return set(self._pack_no)

    def __iter__(self) -> Iterator[PackedBlob]:
        for btype in BlobType:
            for bid, e in list(self._blobs[btype].items()):
                yield PackedBlob(btype, bid, self._packs[e[0]], e[1], e[2], e[3])


def encode_index_file(packs: dict[bytes, list[PackedBlob]], supersedes: Iterable[bytes] = ()) -> bytes:
    obj: dict = {}
    sup = [s.hex() for s in supersedes]
    if sup:
        obj["supersedes"] = sup
    obj["packs"] = [
        {"id": pid.hex(), "blobs": [_blob_json(b) for b in blobs]} for pid, blobs in packs.items()
    ]
    # restic writes index files with json.Encoder, which appends a newline
    return (gojson.dumps(obj) + "\n").encode()


def _blob_json(b: PackedBlob) -> dict:
    d = {"id": b.id.hex(), "type": b.type.json_name, "offset": b.offset, "length": b.length}
    if b.raw_length:
        d["uncompressed_length"] = b.raw_length
    return d


def decode_index_file(raw: bytes, what: str) -> tuple[list[bytes], list[PackedBlob]]:
    """Returns (superseded index ids, blobs). Accepts the legacy bare-array format too."""
    try:
        obj = json.loads(raw)
        if isinstance(obj, list):  # legacy format: a bare list of packs
            obj = {"packs": obj}
        blobs: list[PackedBlob] = []
        for p in obj.get("packs") or []:
            pid = bytes.fromhex(p["id"])
            for b in p.get("blobs") or []:
                blobs.append(PackedBlob(BlobType.from_json(b["type"]), bytes.fromhex(b["id"]), pid,
                                        int(b["offset"]), int(b["length"]),
                                        int(b.get("uncompressed_length") or 0)))
        sup = [bytes.fromhex(s) for s in obj.get("supersedes") or []]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise IntegrityError(f"{what}: not a valid index file ({e})") from None
    return sup, blobs
