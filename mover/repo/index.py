"""The blob index: which pack holds a blob, at what offset and length.

Index files are JSON (``{"supersedes": [...], "packs": [{"id", "blobs": [...]}]}``); the
in-memory index merges all of them. It holds no Python object per blob: every blob type has
packed columns (``bytearray`` of 32-byte ids, ``array`` of pack number, offset, length and
uncompressed length) and an open-addressing hash table (an ``array`` of row numbers) over them;
pack ids are kept the same way, about 64 bytes per blob in all (``tests/bench/index_memory.py``
measures it).
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Iterable, Iterator
from typing import Literal

import msgspec

from mover.errors import IntegrityError
from mover.golang import gojson
from mover.repo.blob import BlobType, PackedBlob

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
        return find_row(self.slots, self.ids, blob_id, _ID)

    def add_new(self, rows: list[tuple[bytes, int, int, int, int]]) -> None:
        """Append the rows (id, pack, offset, length, raw length) whose id is not in the table
        yet; the caller holds the index lock. Loading the index is on the path of every
        command, so this is one loop with the lookup and the insertion fused: the probe that
        finds no such id ends on the free slot the row goes into."""
        self._reserve(self.n + len(rows))
        slots, ids = self.slots, self.ids
        mask = len(slots) - 1
        pack, offset, length, raw = self.pack, self.offset, self.length, self.raw
        n = self.n
        for bid, no, off, ln, rl in rows:
            if len(bid) != _ID:
                raise ValueError(f"blob id of {len(bid)} bytes, expected {_ID}")
            i = hash(bid) & mask
            while True:
                r = slots[i]
                if not r:
                    break
                if ids.startswith(bid, (r - 1) * _ID):
                    break
                i = (i + 1) & mask
            if r:
                continue  # the first entry for a blob wins
            if not (0 <= off < 1 << 64 and 0 <= ln < _U32 and 0 <= rl < _U32):
                raise ValueError(f"blob {bid.hex()[:16]}: offset or length out of range")
            ids += bid
            pack.append(no)
            offset.append(off)
            length.append(ln)
            raw.append(rl)
            n += 1
            self.n = n
            slots[i] = n  # last: a reader sees the row only once it is complete

    def _reserve(self, rows: int) -> None:
        self.slots = reserve_slots(self.slots, self.ids, self.n, _ID, rows)

    def row_id(self, r: int) -> bytes:
        return bytes(self.ids[r * _ID:(r + 1) * _ID])


def find_row(slots: array, ids: bytearray, key: bytes, width: int) -> int:
    """The row of ``key`` in a table of ``width``-byte keys packed in ``ids``, whose hash
    table ``slots`` holds row + 1 (0: empty) with linear probing; -1 when it is not there."""
    mask = len(slots) - 1
    try:
        i = hash(key) & mask
    except TypeError:  # a bytearray or writable memoryview
        key = bytes(key)
        i = hash(key) & mask
    while True:
        r = slots[i]
        if not r:
            return -1
        r -= 1
        if ids.startswith(key, r * width) and len(key) == width:
            return r
        i = (i + 1) & mask


def reserve_slots(slots: array, ids: bytearray, n: int, width: int, rows: int) -> array:
    """``slots``, or a bigger hash table (at most 2/3 full) for ``rows`` rows, rehashed once.
    A grown table is a new array: readers holding the old one still see a consistent table."""
    size = len(slots)
    while rows * 3 > size * 2:
        size *= 2
    if size == len(slots):
        return slots
    grown = array(slots.typecode, bytes(slots.itemsize * size))
    mask = size - 1
    keys = bytes(ids)
    for r in range(n):
        i = hash(keys[r * width:(r + 1) * width]) & mask
        while grown[i]:
            i = (i + 1) & mask
        grown[i] = r + 1
    return grown


class Index:
    """Thread-safe map (type, blob id) -> location, merged from every index file.

    The first entry for a blob wins; later duplicates (the same blob in another pack) are
    dropped, though their pack still counts in :meth:`packs`. Lookups take no lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # pack ids by number, packed like the blob ids, with their own hash table: a bytes
        # object, a list slot and a dict entry per pack cost ~170 bytes, ~10 per blob
        self._pack_ids = bytearray()
        self._pack_slots = array(_U32_T, bytes(4 * _MIN_SLOTS))
        self._npacks = 0
        self._tables: tuple[_Table, _Table] = (_Table(), _Table())

    def __len__(self) -> int:
        return self._tables[0].n + self._tables[1].n

    def add(self, blobs: Iterable[PackedBlob]) -> None:
        rows: tuple[list, list] = ([], [])
        with self._lock:
            for b in blobs:
                rows[b.type].append((b.id, self._pack_number(b.pack), b.offset, b.length, b.raw_length))
            for t, r in zip(self._tables, rows, strict=True):
                t.add_new(r)

    def add_index_file(self, raw: bytes, what: str) -> list[bytes]:
        """Merge one index file's JSON without a PackedBlob per entry; returns its supersedes.

        Same checks and errors as :func:`decode_index_file`; after an error (IntegrityError)
        the index holds part of the file and must not be used.
        """
        sup, packs = _parse_index_file(raw, what)
        rows: tuple[list, list] = ([], [])
        with self._lock:
            try:
                for pid, blobs in packs:
                    no = self._pack_number(pid)
                    for t, bid, off, length, rawlen in blobs:
                        rows[t].append((bid, no, off, length, rawlen))
                for table, r in zip(self._tables, rows, strict=True):
                    table.add_new(r)
            except ValueError as e:  # an id or a number out of range, seen while inserting
                raise IntegrityError(f"{what}: not a valid index file ({e})") from None
        return sup

    def _pack_number(self, pid: bytes) -> int:
        """The number of pack ``pid``, a new one if it is new; the caller holds the lock."""
        no = find_row(self._pack_slots, self._pack_ids, pid, _ID)
        if no >= 0:
            return no
        if len(pid) != _ID:
            raise ValueError(f"pack id of {len(pid)} bytes, expected {_ID}")
        no = self._npacks
        self._pack_slots = slots = reserve_slots(self._pack_slots, self._pack_ids, no, _ID, no + 1)
        mask = len(slots) - 1
        i = hash(pid) & mask
        while slots[i]:
            i = (i + 1) & mask
        self._pack_ids += pid
        self._npacks = no + 1
        slots[i] = no + 1  # last, as in _Table.add_new
        return no

    def _pack_id(self, no: int) -> bytes:
        return bytes(self._pack_ids[no * _ID:(no + 1) * _ID])

    def has(self, btype: BlobType, blob_id: bytes) -> bool:
        return self._tables[btype].find(blob_id) >= 0

    def has_all(self, btype: BlobType, blob_ids: Iterable[bytes]) -> bool:
        find = self._tables[btype].find
        for b in blob_ids:
            if find(b) < 0:
                return False
        return True

    def get(self, btype: BlobType, blob_id: bytes) -> PackedBlob | None:
        t = self._tables[btype]
        r = t.find(blob_id)
        if r < 0:
            return None
        return PackedBlob(btype, blob_id, self._pack_id(t.pack[r]), t.offset[r], t.length[r], t.raw[r])

    def packs(self) -> set[bytes]:
        ids = bytes(self._pack_ids)
        return {ids[i:i + _ID] for i in range(0, len(ids), _ID)}

    def __iter__(self) -> Iterator[PackedBlob]:
        pack_id = self._pack_id
        for btype in BlobType:
            t = self._tables[btype]
            for r in range(t.n):
                yield PackedBlob(btype, t.row_id(r), pack_id(t.pack[r]), t.offset[r], t.length[r], t.raw[r])


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
    sup, packs = _parse_index_file(raw, what)
    return sup, [PackedBlob(t, bid, pid, off, length, rawlen)
                 for pid, blobs in packs for t, bid, off, length, rawlen in blobs]


class _StoredBlob(msgspec.Struct, gc=False):
    id: str
    type: Literal["data", "tree"]
    offset: int
    length: int
    uncompressed_length: int | None = None


class _StoredPack(msgspec.Struct, gc=False):
    id: str
    blobs: list[_StoredBlob] | None = None


class _StoredIndex(msgspec.Struct):
    supersedes: list[str] | None = None
    packs: list[_StoredPack] | None = None


# every command loads the whole index first: decoded in C into structs (no dict per blob), a
# third of what json.loads and reading its dicts took; the legacy format is a bare list of packs
_INDEX_DECODER = msgspec.json.Decoder(_StoredIndex | list[_StoredPack])

_Parsed = tuple[list[bytes], list[tuple[bytes, list[tuple[BlobType, bytes, int, int, int]]]]]


def _parse_index_file(raw: bytes, what: str) -> _Parsed:
    """(superseded index ids, [(pack id, [(type, blob id, offset, length, raw length)])])."""
    fromhex = bytes.fromhex
    try:
        obj = _INDEX_DECODER.decode(raw)
        stored, sup = (obj, None) if isinstance(obj, list) else (obj.packs, obj.supersedes)
        packs = [(fromhex(p.id), [(_TYPES[b.type], fromhex(b.id), b.offset, b.length,
                                   b.uncompressed_length or 0) for b in p.blobs or ()])
                 for p in stored or ()]
        return [fromhex(s) for s in sup or ()], packs
    except ValueError as e:  # msgspec's errors are ValueErrors, so are bad hex ids
        raise IntegrityError(f"{what}: not a valid index file ({e})") from None
