"""The blob index: which pack holds a blob, at what offset and length.

Index files are JSON (``{"supersedes": [...], "packs": [{"id", "blobs": [...]}]}``); the
in-memory index merges all of them. It holds no Python object per blob: every blob type has
packed columns (``bytearray`` of 32-byte ids, ``array`` of pack number, offset, length and
uncompressed length) and an open-addressing hash table (an ``array`` of row numbers) over them,
about 64 bytes per blob in all (``tests/bench/index_memory.py`` measures it).
"""

from __future__ import annotations

import json
import threading
from array import array
from typing import Iterable, Iterator

from mover.repo import gojson
from mover.repo.blob import BlobType, PackedBlob
from mover.repo.errors import IntegrityError

_ID = 32
_MIN_SLOTS = 1024
_U32 = 1 << 32


def _u32_code() -> str:
    for code in ("I", "L"):
        if array(code).itemsize == 4:
            return code
    raise RuntimeError("no 4-byte array type")  # pragma: no cover


def _u64_code() -> str:
    for code in ("Q", "L"):
        if array(code).itemsize == 8:
            return code
    raise RuntimeError("no 8-byte array type")  # pragma: no cover


_U32_T = _u32_code()
_U64_T = _u64_code()


class _Table:
    """The blobs of one type: columns in insertion order plus a hash table of row numbers.

    ``slots[h & (len(slots) - 1)]`` holds row + 1 (0: empty), with linear probing; the table is
    at most 2/3 full. Rows are only ever appended, and a grown table is published with one
    assignment, so readers need no lock: they see a consistent table, old or new.
    """

    __slots__ = ("ids", "pack", "offset", "length", "raw", "slots", "n")

    def __init__(self) -> None:
        self.ids = bytearray()
        self.pack = array(_U32_T)
        self.offset = array(_U64_T)
        self.length = array(_U32_T)
        self.raw = array(_U32_T)
        self.slots = array(_U32_T, bytes(4 * _MIN_SLOTS))
        self.n = 0

    def find(self, blob_id: bytes) -> int:
        """Row of ``blob_id``, or -1."""
        slots = self.slots
        mask = len(slots) - 1
        ids = self.ids
        try:
            i = hash(blob_id) & mask
        except TypeError:  # a bytearray or writable memoryview
            blob_id = bytes(blob_id)
            i = hash(blob_id) & mask
        while True:
            r = slots[i]
            if not r:
                return -1
            r -= 1
            if ids.startswith(blob_id, r * _ID) and len(blob_id) == _ID:
                return r
            i = (i + 1) & mask

    def insert(self, blob_id: bytes, pack: int, offset: int, length: int, raw: int) -> None:
        """Append a row (the caller holds the index lock and knows ``blob_id`` is new)."""
        if (self.n + 1) * 3 > len(self.slots) * 2:
            self._grow()
        r = self.n
        self.ids += blob_id
        self.pack.append(pack)
        self.offset.append(offset)
        self.length.append(length)
        self.raw.append(raw)
        self.n = r + 1
        slots = self.slots
        mask = len(slots) - 1
        i = hash(blob_id) & mask
        while slots[i]:
            i = (i + 1) & mask
        slots[i] = r + 1  # last: a reader sees the row only once it is complete

    def _grow(self) -> None:
        size = len(self.slots) * 2
        slots = array(_U32_T, bytes(4 * size))
        mask = size - 1
        ids = bytes(self.ids)
        for r in range(self.n):
            i = hash(ids[r * _ID:(r + 1) * _ID]) & mask
            while slots[i]:
                i = (i + 1) & mask
            slots[i] = r + 1
        self.slots = slots

    def row_id(self, r: int) -> bytes:
        return bytes(self.ids[r * _ID:(r + 1) * _ID])


class Index:
    """Thread-safe map (type, blob id) -> location, merged from every index file.

    The first entry for a blob wins; later duplicates (the same blob in another pack) are
    dropped, though their pack still counts in :meth:`packs`. Lookups take no lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._packs: list[bytes] = []
        self._pack_no: dict[bytes, int] = {}
        self._tables: tuple[_Table, _Table] = (_Table(), _Table())

    def __len__(self) -> int:
        return self._tables[0].n + self._tables[1].n

    def add(self, blobs: Iterable[PackedBlob]) -> None:
        with self._lock:
            pack_no = self._pack_no
            tables = self._tables
            for b in blobs:
                no = pack_no.get(b.pack)
                if no is None:
                    no = pack_no[b.pack] = len(self._packs)
                    self._packs.append(b.pack)
                self._insert(tables[b.type], b.id, no, b.offset, b.length, b.raw_length)

    def add_index_file(self, raw: bytes, what: str) -> list[bytes]:
        """Merge one index file's JSON without a PackedBlob per entry; returns its supersedes.

        Same checks and errors as :func:`decode_index_file`; on an error nothing is added.
        """
        try:
            obj = json.loads(raw)
            if isinstance(obj, list):  # legacy format: a bare list of packs
                obj = {"packs": obj}
            rows = []
            for p in obj.get("packs") or []:
                pid = bytes.fromhex(p["id"])
                for b in p.get("blobs") or []:
                    rows.append((pid, _TYPES[b["type"]], bytes.fromhex(b["id"]), int(b["offset"]),
                                 int(b["length"]), int(b.get("uncompressed_length") or 0)))
            sup = [bytes.fromhex(s) for s in obj.get("supersedes") or []]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise IntegrityError(f"{what}: not a valid index file ({e})") from None
        with self._lock:
            pack_no = self._pack_no
            tables = self._tables
            last_pid, no = None, 0
            for pid, t, bid, off, length, rawlen in rows:
                if pid is not last_pid:
                    last_pid = pid
                    no = pack_no.get(pid)
                    if no is None:
                        no = pack_no[pid] = len(self._packs)
                        self._packs.append(pid)
                self._insert(tables[t], bid, no, off, length, rawlen)
        return sup

    @staticmethod
    def _insert(t: _Table, bid: bytes, no: int, offset: int, length: int, raw: int) -> None:
        if len(bid) != _ID:
            raise ValueError(f"blob id of {len(bid)} bytes, expected {_ID}")
        if t.find(bid) >= 0:
            return
        if not (0 <= offset < 1 << 64 and 0 <= length < _U32 and 0 <= raw < _U32):
            raise ValueError(f"blob {bid.hex()[:16]}: offset or length out of range")
        t.insert(bid, no, offset, length, raw)

    def has(self, btype: BlobType, blob_id: bytes) -> bool:
        return self._tables[btype].find(blob_id) >= 0

    def get(self, btype: BlobType, blob_id: bytes) -> PackedBlob | None:
        t = self._tables[btype]
        r = t.find(blob_id)
        if r < 0:
            return None
        return PackedBlob(btype, blob_id, self._packs[t.pack[r]], t.offset[r], t.length[r], t.raw[r])

    def packs(self) -> set[bytes]:
        return set(self._pack_no)

    def __iter__(self) -> Iterator[PackedBlob]:
        packs = self._packs
        for btype in BlobType:
            t = self._tables[btype]
            for r in range(t.n):
                yield PackedBlob(btype, t.row_id(r), packs[t.pack[r]], t.offset[r], t.length[r], t.raw[r])


_TYPES = {"data": BlobType.DATA, "tree": BlobType.TREE}


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
