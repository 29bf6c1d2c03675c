"""Kopia's content index: which pack holds a content, where, how long, compressed how.

Index blobs are binary (format v1 or v2: a header, fixed-size entries sorted by content id, pack
names). The merged index holds no Python object per content: fixed-width content keys in one
``bytearray``, the fields in ``array`` columns, and an open-addressing hash table of row numbers
over them, as :mod:`mover.repo.index` does for restic. When several index blobs name the same
content, the newest entry wins (kopia's rule: later timestamp, then not deleted, then the greater
pack name).

Keys sort unprefixed (file data) first, then by prefix letter (directories, manifests, ...), so
each blob's metadata entries are its tail: they are merged when the blob is read, and the data
entries only at the first lookup of file data. Listing a snapshot never pays for its data.
"""

from __future__ import annotations

import struct
import threading
from array import array
from collections.abc import Iterator
from dataclasses import dataclass

from mover.errors import IntegrityError
from mover.repo.index import find_row, reserve_slots

_MIN_SLOTS = 1024
_V1_ENTRY = 20
_V2_HEADER = 17
_V2_PACK_INFO = 5
_V2_FORMAT_INFO = 6


@dataclass(frozen=True, slots=True)
class ContentInfo:
    key: bytes  # prefix byte (0: none) + hash
    pack: str
    offset: int
    packed_length: int
    original_length: int
    compression: int  # compressor header id, 0: stored as is
    deleted: bool
    timestamp: int

    @property
    def iv(self) -> bytes:
        return self.key[-16:]


def key_to_str(key: bytes) -> str:
    return (chr(key[0]) if key[0] else "") + key[1:].hex()


def str_to_key(cid: str) -> bytes:
    """``k0123…`` or ``0123…`` -> key bytes; ValueError when it is not a content id."""
    if cid and "g" <= cid[0] <= "z":
        return cid[0].encode() + bytes.fromhex(cid[1:])
    return b"\0" + bytes.fromhex(cid)


class _Table:
    """One set of merged entries: columns in insertion order plus a hash table of row + 1.
    Rows only ever grow and a grown hash table is published with one assignment, so lookups
    take no lock."""

    def __init__(self) -> None:
        self.ids = bytearray()
        self.pack = array("I")
        self.offset = array("I")
        self.packed = array("I")
        self.original = array("I")
        self.comp = array("I")
        self.time = array("Q")
        self.deleted = bytearray()
        self.slots = array("I", bytes(4 * _MIN_SLOTS))
        self.n = 0

    def merge(self, rows: list, width: int, packs: list[str]) -> None:
        self.slots = reserve_slots(self.slots, self.ids, self.n, width, self.n + len(rows))
        slots, ids = self.slots, self.ids
        mask = len(slots) - 1
        cols = (self.pack, self.offset, self.packed, self.original, self.comp)
        for row in rows:
            key = row[0]
            i = hash(key) & mask
            while True:
                r = slots[i]
                if not r or ids.startswith(key, (r - 1) * width):
                    break
                i = (i + 1) & mask
            if r:
                r -= 1
                if self._newer(row, r, packs):
                    self._set(r, row)
                continue
            ids += key
            for col, v in zip(cols, row[1:6], strict=True):
                col.append(v)
            self.deleted.append(row[6])
            self.time.append(row[7])
            self.n += 1
            slots[i] = self.n  # last: a reader sees the row only once it is complete

    def _newer(self, row, r: int, packs: list[str]) -> bool:
        ts, deleted = row[7], row[6]
        if ts != self.time[r]:
            return ts > self.time[r]
        if deleted != self.deleted[r]:
            return not deleted
        return packs[row[1]] > packs[self.pack[r]]

    def _set(self, r: int, row) -> None:
        _, self.pack[r], self.offset[r], self.packed[r], self.original[r], self.comp[r], \
            self.deleted[r], self.time[r] = row


class ContentIndex:
    """The merged index of a repository."""

    def __init__(self) -> None:
        self.key_size = 0
        self.packs: list[str] = []
        self._pack_no: dict[str, int] = {}
        self._meta = _Table()
        self._data = _Table()
        self._pending: list[tuple[bytes, str, int, int]] = []  # (blob, what, overhead, boundary)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        self._load_data()
        return self._meta.n + self._data.n

    # ---- lookups ---------------------------------------------------------------------------

    def get(self, key: bytes, ignore_deleted_before: int = 0) -> ContentInfo | None:
        """The content's entry; None when it is not indexed, or deleted no later than the
        deletion watermark (kopia then treats it as gone)."""
        if key[:1] == b"\0":
            if self._pending:
                self._load_data()
            t = self._data
        else:
            t = self._meta
        r = find_row(t.slots, t.ids, key, self.key_size)
        if r < 0:
            return None
        deleted = bool(t.deleted[r])
        if deleted and t.time[r] <= ignore_deleted_before:
            return None
        return ContentInfo(key, self.packs[t.pack[r]], t.offset[r], t.packed[r],
                           t.original[r], t.comp[r], deleted, t.time[r])

    def keys_with_prefix(self, prefix: bytes) -> Iterator[bytes]:
        """Keys whose prefix byte is ``prefix`` (b"m": manifests), in no particular order."""
        k, ids = self.key_size, self._meta.ids
        firsts = bytes(ids[0::k]) if k else b""
        i = firsts.find(prefix)
        while i >= 0:
            yield bytes(ids[i * k:(i + 1) * k])
            i = firsts.find(prefix, i + 1)

    # ---- building --------------------------------------------------------------------------

    def add_blob(self, data: bytes, what: str, v1_overhead: int) -> None:
        """Merge one decrypted index blob (v1 or v2): its metadata now, its data later."""
        key_size, count, entries_at, stride = self._header(data, what)
        if not count:
            return
        if not self.key_size:
            self.key_size = key_size
        elif key_size != self.key_size:
            raise IntegrityError(f"{what}: content ids of {key_size - 1} bytes, the index has "
                                 f"{self.key_size - 1}")
        # the first entry with a prefix byte: entries are sorted by key
        lo, hi = 0, count
        while lo < hi:
            mid = (lo + hi) // 2
            if data[entries_at + mid * stride]:
                hi = mid
            else:
                lo = mid + 1
        self._meta.merge(self._rows(data, what, v1_overhead, lo, count), key_size, self.packs)
        if lo:
            self._pending.append((data, what, v1_overhead, lo))

    def _load_data(self) -> None:
        with self._lock:
            # emptied only once merged: a reader that sees no pending blob finds every row
            for data, what, overhead, boundary in self._pending:
                self._data.merge(self._rows(data, what, overhead, 0, boundary), self.key_size,
                                 self.packs)
            self._pending = []

    def _header(self, data: bytes, what: str) -> tuple[int, int, int, int]:
        """(key size, entry count, where entries start, entry stride)."""
        try:
            version, key_size, entry_size, count = struct.unpack_from(">BBHI", data)
            if key_size <= 1:
                raise ValueError(f"bad key size {key_size}")
            if version == 1:
                if entry_size != _V1_ENTRY:
                    raise ValueError(f"bad entry size {entry_size}")
                at = 8
            elif version == 2:
                if not 16 <= entry_size <= 19:
                    raise ValueError(f"bad entry size {entry_size}")
                at = _V2_HEADER
            else:
                raise IntegrityError(f"{what}: index format version {version} is not supported")
            if at + count * (key_size + entry_size) > len(data):
                raise ValueError("entries run past the end")
        except (struct.error, ValueError) as e:
            raise IntegrityError(f"{what}: not a valid kopia index blob ({e})") from None
        return key_size, count, at, key_size + entry_size

    def _rows(self, data: bytes, what: str, overhead: int, lo: int, hi: int) -> list:
        try:
            if data[0] == 1:
                return self._rows_v1(data, overhead, lo, hi)
            return self._rows_v2(data, lo, hi)
        except (struct.error, IndexError, ValueError, UnicodeDecodeError) as e:
            raise IntegrityError(f"{what}: not a valid kopia index blob ({e})") from None

    def _pack_number(self, name: str) -> int:
        no = self._pack_no.get(name)
        if no is None:
            no = self._pack_no[name] = len(self.packs)
            self.packs.append(name)
        return no

    def _rows_v1(self, data: bytes, overhead: int, lo: int, hi: int) -> list:
        key_size = data[1]
        stride = key_size + _V1_ENTRY
        names: dict[tuple[int, int], int] = {}
        out = []
        fmt = struct.Struct(f">{key_size}sQIII")
        for key, ts_flags, name_off, off_flags, packed in fmt.iter_unpack(
                data[8 + lo * stride:8 + hi * stride]):
            name_len = ts_flags & 0xFF
            pn = names.get((name_off, name_len))
            if pn is None:
                if name_off + name_len > len(data):
                    raise ValueError("pack name out of bounds")
                pn = names[(name_off, name_len)] = self._pack_number(
                    data[name_off:name_off + name_len].decode("ascii"))
            out.append((key, pn, off_flags & 0x7FFFFFFF, packed, packed - overhead, 0,
                        off_flags >> 31, ts_flags >> 16))
        return out

    def _rows_v2(self, data: bytes, lo: int, hi: int) -> list:
        key_size = data[1]
        entry_size, count, pack_count = struct.unpack_from(">HII", data, 2)
        format_count = data[12]
        (base_ts,) = struct.unpack_from(">I", data, 13)
        stride = key_size + entry_size
        packs_at = _V2_HEADER + count * stride
        formats_at = packs_at + pack_count * _V2_PACK_INFO
        if formats_at + format_count * _V2_FORMAT_INFO > len(data):
            raise ValueError("sections run past the end")
        pack_nos = []
        for i in range(pack_count):
            ln, off = struct.unpack_from(">BI", data, packs_at + i * _V2_PACK_INFO)
            if off + ln > len(data):
                raise ValueError("pack name out of bounds")
            pack_nos.append(self._pack_number(data[off:off + ln].decode("ascii")))
        formats = []
        for i in range(format_count):
            comp, _version, key_id = struct.unpack_from(">IBB", data, formats_at + i * _V2_FORMAT_INFO)
            formats.append(comp if key_id == 0 else -1)
        out = []
        # ts(4) offset+deleted(4) original(3) packed(3) pack(2) [format(1) [pack hi(1) [len hi(1)]]]
        fmt = struct.Struct(f">{key_size}sII3s3sH{entry_size - 16}s")
        start = _V2_HEADER + lo * stride
        for key, ts, off_flags, orig, packed, pack_lo, extra in fmt.iter_unpack(
                data[start:start + (hi - lo) * stride]):
            o = int.from_bytes(orig, "big")
            p = int.from_bytes(packed, "big")
            fid = extra[0] if extra else 0
            pi = pack_lo | (extra[1] << 16 if len(extra) > 1 else 0)
            if len(extra) > 2:
                o |= (extra[2] >> 4) << 24
                p |= (extra[2] & 0xF) << 24
            if fid >= len(formats) or formats[fid] < 0 or pi >= len(pack_nos):
                raise ValueError(f"entry {key_to_str(key)} names an unknown format or pack")
            out.append((key, pack_nos[pi], off_flags & 0x7FFFFFFF, p, o, formats[fid],
                        off_flags >> 31, ts + base_ts))
        return out
