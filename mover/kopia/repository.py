"""An open kopia repository: contents by id, objects (files, directories, symlink targets) by
object id, and the manifests that name snapshots. Read-only.

Object ids are content ids with markers in front: ``I`` once per level of indirection (the
object is a JSON list of the pieces that make it up), ``Z`` for compression at object level
(old repositories; newer ones compress contents and say so in the index), a legacy ``D``.
"""

from __future__ import annotations

import bisect
import gzip
import json
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from mover.errors import (
    IntegrityError,
    NotARepository,
    NotFound,
    RepoError,
    WrongPassword,
)
from mover.golang import gotime
from mover.kopia import epoch
from mover.kopia.format import HASHES, ContentCipher, FormatBlob, RepoConfig, decompress
from mover.kopia.index import ContentIndex, ContentInfo, key_to_str, str_to_key
from mover.kopia.storage import BLOBCFG_BLOB, FORMAT_BLOB, BlobStore
from mover.view.cache import BlobCache

LOAD_THREADS = 8  # index and manifest blobs are small: fetched in parallel from remote stores
_CACHED_OBJECTS = 1024
METADATA_PACKS_BYTES = 64 << 20
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class ObjectRef:
    indirection: int
    compressed: bool  # object-level compression: the content is a compressed payload
    key: bytes

    @classmethod
    def parse(cls, oid: str) -> ObjectRef:
        n = len(oid) - len(oid.lstrip("I"))
        z = oid[n:n + 1] == "Z"
        i = n + z
        if oid[i:i + 1] == "D":
            i += 1
        try:
            return cls(n, z, str_to_key(oid[i:]))
        except ValueError:
            raise IntegrityError(f"{oid!r} is not a kopia object id") from None


class DirEntry(msgspec.Struct, gc=False):
    """One entry of a directory object, as kopia's ``snapshot.DirEntry`` writes it: ``mode``
    is octal text, ``mtime`` RFC 3339 in UTC; kopia leaves out what is empty. Fields kopia
    adds (a directory's ``summ``) are skipped without being decoded."""

    name: str = ""
    type: str = ""
    mode: str = ""
    size: int = 0
    mtime: str = ""
    uid: int = 0
    gid: int = 0
    obj: str = ""


class _DirObject(msgspec.Struct, gc=False):
    stream: str = ""
    entries: list[DirEntry] | None = None


# msgspec builds the entries straight from the JSON: a third of json.loads' time, and no dict
_DIR_DECODER = msgspec.json.Decoder(_DirObject)


@dataclass(frozen=True)
class Chunks:
    """A file object as a list of direct objects: piece i covers [starts[i], starts[i+1])."""

    starts: list[int]
    lengths: list[int]
    oids: list[str]

    @property
    def size(self) -> int:
        return self.starts[-1] + self.lengths[-1] if self.starts else 0

    def piece(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset) - 1


class KopiaRepository:
    def __init__(self, store: BlobStore, fmt: FormatBlob, config: RepoConfig) -> None:
        self.store = store
        self.format = fmt
        self.config = config
        if config.hash not in HASHES:
            raise RepoError(f"kopia repository hashes with {config.hash!r}, which kbrowse does not know")
        if config.ecc:
            raise RepoError(f"kopia repository uses error correction ({config.ecc}), which kbrowse "
                            "cannot read yet")
        self.hash = HASHES[config.hash](config.secret)
        self.cipher = ContentCipher(config.encryption, config.master_key)
        self._lock = threading.Lock()
        self._index: ContentIndex | None = None
        self._index_blobs: frozenset[str] = frozenset()
        self._watermark = 0
        self._objects: OrderedDict[str, object] = OrderedDict()
        # Metadata packs ("q": directories, manifests, indirect lists) are read whole, once:
        # a listing then costs a request per pack, not one per directory (as kopia caches them).
        self._metadata_packs = BlobCache(METADATA_PACKS_BYTES)

    # ---- opening ---------------------------------------------------------------------------

    @classmethod
    def read_format(cls, store: BlobStore) -> FormatBlob:
        try:
            raw = store.get(FORMAT_BLOB)
        except NotFound:
            raise NotARepository(f"{store.location()}: no kopia repository here "
                                 f"({FORMAT_BLOB} is missing)") from None
        return FormatBlob.parse(raw, store.location())

    @classmethod
    def open(cls, store: BlobStore, password: str) -> KopiaRepository:
        fmt = cls.read_format(store)
        return cls.open_with_key(store, fmt, fmt.derive_format_key(password))

    @classmethod
    def open_with_key(cls, store: BlobStore, fmt: FormatBlob, format_key: bytes) -> KopiaRepository:
        plain = fmt.open_sealed(format_key, fmt.sealed_config)
        if plain is None:
            raise WrongPassword(f"wrong password for the kopia repository at {store.location()} "
                                f"(its {FORMAT_BLOB} does not open with it)")
        repo = cls(store, fmt, RepoConfig.parse(plain, f"{store.location()}/{FORMAT_BLOB}"))
        try:
            sealed = store.get(BLOBCFG_BLOB)
        except NotFound:
            sealed = None  # optional: only repositories with retention settings need one
        if sealed and fmt.open_sealed(format_key, sealed) is None:
            raise IntegrityError(f"{store.location()}: {BLOBCFG_BLOB} is damaged (it does not "
                                 "open with the repository's key)")
        return repo

    def location(self) -> str:
        return self.store.location()

    def close(self) -> None:
        self.store.close()

    # ---- the index -------------------------------------------------------------------------

    @property
    def index(self) -> ContentIndex:
        idx = self._index
        if idx is None:
            with self._lock:
                if self._index is None:
                    self._load_index()
                idx = self._index
        assert idx is not None
        return idx

    def _current_index_blobs(self) -> tuple[list[str], int]:
        if self.config.epochs:
            s = epoch.current_set(sorted(b for b, _ in self.store.list("x")))
            return s.blobs, s.deletion_watermark
        return sorted(b for b, _ in self.store.list("n")), 0

    def _load_index(self, blobs: list[str] | None = None, watermark: int = 0) -> None:
        if blobs is None:
            blobs, watermark = self._current_index_blobs()
        idx = ContentIndex()
        for blob_id, plain in zip(blobs, self._load_all(self._open_index_blob, blobs, "kopia-index"),
                                  strict=True):
            idx.add_blob(plain, f"index blob {blob_id}", ContentCipher.OVERHEAD)
        self._index, self._index_blobs, self._watermark = idx, frozenset(blobs), watermark

    def _load_all(self, load: Callable[[T], R], items: list[T], name: str) -> list[R]:
        """``load`` of each item: on threads from a remote store, where each is a round trip;
        in this thread from a local one, where handing reads to threads costs more than they
        take (on a busy machine each hand-over waits for the scheduler)."""
        if self.store.is_local() or len(items) < 2:
            return [load(i) for i in items]
        with ThreadPoolExecutor(min(LOAD_THREADS, len(items)), thread_name_prefix=name) as pool:
            return list(pool.map(load, items))

    def _open_index_blob(self, blob_id: str) -> bytes:
        what = f"index blob {blob_id} of {self.location()}"
        try:
            sealed = self.store.get(blob_id)
        except NotFound:
            raise NotFound(f"{what} is missing (listed, then gone: run the command again)") from None
        # the IV is the last 32 hex digits of the id before its first "-"
        base = blob_id.partition("-")[0]
        try:
            iv = bytes.fromhex(base[-32:])
        except ValueError:
            raise IntegrityError(f"{what}: not an index blob name") from None
        return self.cipher.open(sealed, iv, what)

    def refresh(self) -> bool:
        """Re-read the index when its set of blobs changed; True if it did."""
        blobs, watermark = self._current_index_blobs()
        with self._lock:
            if frozenset(blobs) == self._index_blobs and watermark == self._watermark \
                    and self._index is not None:
                return False
            self._load_index(blobs, watermark)
        return True

    # ---- contents --------------------------------------------------------------------------

    def content_info(self, key: bytes) -> ContentInfo:
        info = self.index.get(key, self._watermark)
        if info is None:
            raise NotFound(f"content {key_to_str(key)} is not in the index of {self.location()} "
                           "(repository damaged, or changed meanwhile)")
        return info

    def load_content(self, key: bytes) -> bytes:
        info = self.content_info(key)
        if info.pack.startswith("q"):
            pack = self._metadata_packs.get_or_load(
                info.pack.encode(), lambda: self.load_pack(info.pack, 0, None, key))
            sealed = memoryview(pack)[info.offset:info.offset + info.packed_length]
        else:
            sealed = memoryview(self.load_pack(info.pack, info.offset, info.packed_length, key))
        return self.decode(info, sealed)

    def load_pack(self, pack: str, offset: int, length: int | None,
                  key: bytes | None = None) -> bytes:
        try:
            return self.store.get(pack, offset, length)
        except NotFound:
            held = f" holding content {key_to_str(key)}" if key is not None else ""
            raise NotFound(f"pack {pack}{held} is missing from {self.location()}") from None

    def decode(self, info: ContentInfo, sealed: bytes | memoryview) -> bytes:
        """Decrypt (which authenticates) and decompress one content read from its pack."""
        what = f"content {key_to_str(info.key)} in pack {info.pack} at offset {info.offset}"
        if len(sealed) != info.packed_length:
            raise IntegrityError(f"{what}: pack {info.pack} is truncated (got {len(sealed)} of "
                                 f"{info.packed_length} bytes)")
        plain = self.cipher.open(sealed, info.iv, what)
        if info.compression:
            return decompress(plain, info.original_length, what)
        if len(plain) != info.original_length:
            raise IntegrityError(f"{what}: {len(plain)} bytes, the index says {info.original_length}")
        return plain

    # ---- objects ---------------------------------------------------------------------------

    def _cached(self, key: str, make):
        with self._lock:
            v = self._objects.get(key)
            if v is not None:
                self._objects.move_to_end(key)
                return v
        v = make()
        with self._lock:
            self._objects[key] = v
            while len(self._objects) > _CACHED_OBJECTS:
                self._objects.popitem(last=False)
        return v

    def read_direct(self, oid: str, ref: ObjectRef | None = None) -> bytes:
        ref = ref or ObjectRef.parse(oid)
        data = self.load_content(ref.key)
        if ref.compressed:
            data = decompress(data, None, f"object {oid}")
        return data

    def read_object(self, oid: str) -> bytes:
        """A whole object's bytes (directories, symlink targets, indirect lists)."""
        ref = ObjectRef.parse(oid)
        if not ref.indirection:
            return self.read_direct(oid, ref)
        return b"".join(self.read_direct(o) for o in self.chunks(oid, -1).oids)

    def chunks(self, oid: str, size: int) -> Chunks:
        """The direct objects making up object ``oid`` (of ``size`` bytes when direct)."""
        if not oid.startswith("I"):
            return Chunks([0], [size], [oid])
        return self._cached("chunks:" + oid, lambda: self._load_chunks(oid))

    def _load_chunks(self, oid: str) -> Chunks:
        starts: list[int] = []
        lengths: list[int] = []
        oids: list[str] = []

        def add(list_oid: str, base: int) -> None:
            raw = self.read_object(list_oid[1:])
            try:
                d = json.loads(raw)
                if d.get("stream") != "kopia:indirect":
                    raise ValueError(f"stream {d.get('stream')!r}")
                entries = [(int(e.get("s") or 0), int(e.get("l") or 0), str(e["o"]))
                           for e in d.get("entries") or []]
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise IntegrityError(f"object {list_oid}: not a valid indirect object ({e})") from None
            for s, ln, o in entries:
                if o.startswith("I"):
                    add(o, base + s)
                    continue
                if (starts[-1] + lengths[-1] if starts else 0) != base + s:
                    raise IntegrityError(f"object {list_oid}: its pieces do not follow each other")
                starts.append(base + s)
                lengths.append(ln)
                oids.append(o)

        add(oid, 0)
        return Chunks(starts, lengths, oids)

    def load_dir(self, oid: str) -> list[DirEntry]:
        """A directory object's entries, cached."""
        def load() -> list[DirEntry]:
            raw = self.read_object(oid)
            try:
                d = _DIR_DECODER.decode(raw)
                if d.stream != "kopia:directory":
                    raise ValueError(f"stream {d.stream!r}")
            except ValueError as e:  # msgspec's DecodeError and ValidationError are ValueErrors
                raise IntegrityError(f"directory object {oid}: not a valid directory ({e})") from None
            return d.entries or []
        return self._cached("dir:" + oid, load)

    # ---- manifests -------------------------------------------------------------------------

    def manifests(self) -> list[dict]:
        """Every live manifest entry (``id``, ``labels``, ``modified``, ``data``); of several
        versions of one id the newest counts, and deleted ones are gone."""
        idx = self.index
        keys = [k for k in idx.keys_with_prefix(b"m")
                if (info := idx.get(k, self._watermark)) is not None and not info.deleted]
        loaded = self._load_all(self._load_manifest_content, keys, "kopia-manifests")
        latest: dict[str, tuple[int, dict]] = {}
        for entries in loaded:
            for e in entries:
                t = gotime.parse_ns(e["modified"])
                prev = latest.get(e["id"])
                if prev is None or t > prev[0]:
                    latest[e["id"]] = (t, e)
        return [e for _, e in latest.values() if not e.get("deleted")]

    def _load_manifest_content(self, key: bytes) -> list[dict]:
        raw = self.load_content(key)
        what = f"manifest content {key_to_str(key)}"
        try:
            entries = json.loads(gzip.decompress(raw))["entries"] or []
            for e in entries:
                if not isinstance(e.get("id"), str) or not isinstance(e.get("modified"), str):
                    raise ValueError("an entry without id or time")
                gotime.parse_ns(e["modified"])
            return entries
        except (OSError, EOFError, zlib.error, ValueError, KeyError, TypeError, AttributeError) as e:
            raise IntegrityError(f"{what}: not a valid manifest ({e})") from None
