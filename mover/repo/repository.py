"""A restic-format repository: keys, config, blobs in packs, index, snapshots.

Writers call :meth:`Repository.save_blob` from many threads; blobs are compressed and sealed in
the calling thread, collected into packs per blob type, and packs are uploaded in the
background. :meth:`flush` writes the remaining packs and then the index that names them, so an
index never points at a pack that is not stored, and a snapshot is only saved after its index.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor

from mover.errors import IntegrityError, NotFound, RepoError
from mover.golang import gojson
from mover.repo import (
    compression,
    keyfile,
    malloc,  # noqa: F401 - glibc's settings, applied on import (see there)
    polynomial,
)
from mover.repo.backend import Backend, FileType, Handle
from mover.repo.backend.local import LocalBackend
from mover.repo.blob import BlobType, PackedBlob
from mover.repo.crypto import Key
from mover.repo.index import Index, encode_index_file
from mover.repo.pack import PackBuilder
from mover.repo.tree import decode_tree, encode_tree
from mover.view.node import Node
from mover.view.snapshot import Snapshot

PACK_SIZE = 16 * 1024 * 1024  # restic 0.14's default target
INDEX_EVERY_PACKS = 256  # write an index part during long backups, so a crash keeps the work
# ... or after this many blobs, as restic does: packs of small files hold ~2,000 blobs each, and
# every blob waits as a PackedBlob until its index part is written (200,000 files: ~40 MiB)
INDEX_MAX_BLOBS = 50_000


class Repository:
    def __init__(self, backend: Backend, key: Key, config: dict) -> None:
        self.backend = backend
        self.key = key
        self.config = config
        self.version: int = int(config["version"])
        self.id: str = config["id"]
        self.polynomial = int(config["chunker_polynomial"], 16)
        self.pack_size = PACK_SIZE
        self._index: Index | None = None
        self._index_fresh = True  # False: loaded ahead of use (see the index property)
        # the index files the index was read from (None: given by use_index)
        self._loaded_names: frozenset[str] | None = frozenset()
        self._index_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._builders: dict[BlobType, PackBuilder] = {}
        self._in_flight: set[tuple[BlobType, bytes]] = set()
        self._unindexed: dict[bytes, list[PackedBlob]] = {}
        self._unindexed_blobs = 0
        self._uploads: list[Future] = []
        self._upload_pool: ThreadPoolExecutor | None = None
        # Full packs not yet stored, and the most of them blob writers may run ahead of: a
        # local disk keeps up with one being written while the next fills, a remote store wants
        # more requests in flight. Writers wait before compressing, so the memory held in packs
        # stays bounded however many threads write.
        self._pending_packs = 0
        self._max_pending = 2 if isinstance(backend, LocalBackend) else 5
        self._room = threading.Condition(threading.Lock())
        self._tree_cache: OrderedDict[bytes, list[Node]] = OrderedDict()
        self._tree_cache_lock = threading.Lock()
        # called before every write but a lock file's: a lock taken with
        # confirm_before_write=True makes writes wait for its second look (see Lock.acquire)
        self.write_gate: Callable[[], None] | None = None

    # ---- opening and creating -------------------------------------------------------------

    @classmethod
    def init(cls, backend: Backend, password: str, version: int = 2) -> Repository:
        if version not in (1, 2):
            raise RepoError(f"repository version {version} is not supported (use 1 or 2)")
        backend.create()
        master = Key.random()
        key_id, key_raw = keyfile.new_key_file(password.encode(), master)
        config = {"version": version, "id": os.urandom(32).hex(),
                  "chunker_polynomial": f"{polynomial.random_polynomial():x}"}
        backend.save(Handle(FileType.KEY, key_id), key_raw)  # restic writes the key first
        backend.save(Handle(FileType.CONFIG), master.seal(gojson.dumps(config).encode()))
        return cls(backend, master, config)

    @classmethod
    def open(cls, backend: Backend, password: str) -> Repository:
        return cls.open_with_key(backend, keyfile.find_master(backend, password))

    @classmethod
    def open_with_key(cls, backend: Backend, master: Key) -> Repository:
        """Open with the master key :func:`keyfile.find_master` found (read the config)."""
        where = backend.location()
        raw = master.open(backend.load(Handle(FileType.CONFIG)), f"config of {where}")
        try:
            config = json.loads(raw)
            if int(config["version"]) not in (1, 2):
                raise RepoError(f"repository {where} has version {config['version']}, "
                                f"this mover reads versions 1 and 2")
            if not polynomial.is_irreducible(int(config["chunker_polynomial"], 16)):
                raise IntegrityError(f"config of {where}: invalid chunker polynomial")
            str(config["id"])
        except (ValueError, KeyError, TypeError) as e:
            raise IntegrityError(f"config of {where} is malformed ({e})") from None
        repo = cls(backend, master, config)
        repo._prefetch_index()
        return repo

    def close(self) -> None:
        if self._upload_pool:
            self._upload_pool.shutdown(wait=True)
            self._upload_pool = None
        self.backend.close()

    # ---- unpacked files (index, snapshots, locks) -------------------------------------------

    def save_unpacked(self, t: FileType, json_bytes: bytes) -> str:
        data = self.key.seal(compression.encode_unpacked(json_bytes, self.version))
        name = hashlib.sha256(data).hexdigest()
        if t is not FileType.LOCK:
            self._before_write()
        self.backend.save(Handle(t, name), data)
        return name

    def load_unpacked(self, t: FileType, name: str) -> bytes:
        h = Handle(t, name)
        what = f"{h} in {self.backend.location()}"
        data = self.backend.load(h)
        if hashlib.sha256(data).hexdigest() != name:
            raise IntegrityError(f"{what}: content does not match its name (damaged or truncated file)")
        return compression.decode_unpacked(self.key.open(data, what), what)

    # ---- index -------------------------------------------------------------------------------

    @property
    def index(self) -> Index:
        idx = self._index
        if idx is not None and self._index_fresh:
            return idx
        with self._index_lock:
            if self._index is None:
                self._index, self._loaded_names = self._load_index()
            elif not self._index_fresh:
                # Loaded ahead by _prefetch_index, perhaps before the caller took its lock: a
                # prune that ended meanwhile would have replaced index files, so compare the
                # listing once (one list call) and load again if it changed.
                if self._index_names() != self._loaded_names:
                    self._index, self._loaded_names = self._load_index()
            self._index_fresh = True
            return self._index

    def _prefetch_index(self) -> None:
        """Load the index in the background: nearly every command needs it, and it can load
        while the caller takes its lock (restic's 200 ms wait) or finds its snapshot. A load
        that fails is simply retried, and its error raised, by the first real use; the first
        real use also checks that the index files are still the ones loaded."""

        def load() -> None:
            try:
                with self._index_lock:
                    if self._index is None:
                        self._index, self._loaded_names = self._load_index()
                        self._index_fresh = False
            except Exception:  # reported by the caller's own load
                pass

        threading.Thread(target=load, name="index-prefetch", daemon=True).start()

    def use_index(self, idx: Index) -> None:
        """Read through ``idx`` instead of loading index files (check, when one is damaged,
        still walks every tree through the index files it could read)."""
        with self._index_lock:
            self._index = idx
            self._loaded_names = None
            self._index_fresh = True

    def refresh_index(self) -> None:
        """Read the index files written since the index was loaded, so a long-lived reader (a
        mount) finds the blobs of later backups; if one it read is gone (a prune replaced
        it), read them all again."""
        with self._index_lock:
            if self._index is None or self._loaded_names is None:
                return  # not loaded yet (the first use reads the files as they are then)
            names = self._index_names()
            if not self._loaded_names <= names:
                self._index, self._loaded_names = self._load_index()
            else:
                for name in sorted(names - self._loaded_names):
                    self._index.add_index_file(self.load_unpacked(FileType.INDEX, name),
                                               f"index/{name}")
                self._loaded_names = names
            self._index_fresh = True

    def _index_names(self) -> frozenset[str]:
        return frozenset(n for n, _ in self.backend.list(FileType.INDEX))

    def _load_index(self) -> tuple[Index, frozenset[str]]:
        idx = Index()
        names = sorted(self._index_names())
        with ThreadPoolExecutor(8) as pool:
            for name, raw in zip(names, pool.map(lambda n: self.load_unpacked(FileType.INDEX, n), names), strict=True):
                idx.add_index_file(raw, f"index/{name}")
        return idx, frozenset(names)

    # ---- writing blobs -------------------------------------------------------------------------

    def save_blob(self, btype: BlobType, data: bytes | memoryview, blob_id: bytes | None = None) -> tuple[bytes, bool]:
        """Store a blob unless the repository already has it. Returns (id, newly stored).

        Safe to call from many threads: compression and encryption run in the caller's thread.
        """
        if blob_id is None:
            blob_id = hashlib.sha256(data).digest()
        key = (btype, blob_id)
        with self._write_lock:
            if self.index.has(btype, blob_id) or key in self._in_flight:
                return blob_id, False
            self._in_flight.add(key)
        if self._pending_packs >= self._max_pending:
            with self._room:
                while self._pending_packs >= self._max_pending:
                    self._room.wait()
        raw_length = 0
        payload = data
        # v2: trees always compressed, data too (restic's "auto"); an empty blob cannot be marked
        # compressed, so it stays plain.
        if self.version >= 2 and len(data) > 0:
            payload = compression.compress(data)
            raw_length = len(data)
        sealed = self.key.seal_buffer(payload)
        self._raise_upload_errors()
        with self._write_lock:
            b = self._builders.get(btype)
            if b is None:
                b = self._builders[btype] = PackBuilder(self.backend.spool())
            try:
                b.add(btype, blob_id, sealed, raw_length)
            except BaseException:
                # a failed write leaves the spool's end unknown: drop the pack whole (this error
                # fails the backup, so no snapshot refers to the blobs it held)
                del self._builders[btype]
                if b.spool is not None:
                    b.spool.discard()
                raise
            full = b.size >= self.pack_size
            if full:
                del self._builders[btype]
        if full:
            self._submit_pack(b)
        return blob_id, True

    def _submit_pack(self, b: PackBuilder) -> None:
        with self._room:
            self._pending_packs += 1
        if self._upload_pool is None:
            self._upload_pool = ThreadPoolExecutor(4, thread_name_prefix="pack-upload")
        try:
            fut = self._upload_pool.submit(self._upload_pack, b)
        except BaseException:
            self._pack_stored()
            raise
        with self._write_lock:
            self._uploads.append(fut)

    def _before_write(self) -> None:
        gate = self.write_gate
        if gate is not None:
            gate()

    def _upload_pack(self, b: PackBuilder) -> None:
        """Finish a full pack and store it, on an upload thread: hashing the pack and writing
        it run without the GIL, and the blob writer that filled it goes on at once."""
        try:
            pack_id, parts, blobs = b.finish_parts(self.key)
            h = Handle(FileType.PACK, pack_id.hex())
            self._before_write()
            if b.spool is not None:
                b.spool.store(h)
            else:
                self.backend.save_parts(h, parts)
        finally:
            if b.spool is not None:
                b.spool.discard()  # a no-op once stored
            parts = []
            self._pack_stored()
        self.index.add(blobs)
        with self._write_lock:
            self._unindexed[pack_id] = blobs
            self._unindexed_blobs += len(blobs)
            for pb in blobs:
                self._in_flight.discard((pb.type, pb.id))
            write_index = (len(self._unindexed) >= INDEX_EVERY_PACKS
                           or self._unindexed_blobs >= INDEX_MAX_BLOBS)
        if write_index:
            self._write_unindexed()

    def _pack_stored(self) -> None:
        with self._room:
            self._pending_packs -= 1
            self._room.notify_all()

    def _raise_upload_errors(self) -> None:
        with self._write_lock:
            done = [f for f in self._uploads if f.done()]
            self._uploads = [f for f in self._uploads if not f.done()]
        for f in done:
            f.result()

    def _write_unindexed(self) -> None:
        with self._write_lock:
            packs, self._unindexed = self._unindexed, {}
            self._unindexed_blobs = 0
        if packs:
            self.save_unpacked(FileType.INDEX, encode_index_file(packs))

    def flush(self) -> None:
        """Store every pending pack, then an index for all packs not yet in an index file."""
        with self._write_lock:
            builders = list(self._builders.values())
            self._builders.clear()
        for b in builders:
            self._submit_pack(b)
        with self._write_lock:
            uploads, self._uploads = self._uploads, []
        errors = []
        for f in uploads:
            try:
                f.result()
            except BaseException as e:  # collect all, so every pack that made it gets indexed
                errors.append(e)
        self._write_unindexed()
        if errors:
            raise errors[0]

    def abandon_pending(self) -> None:
        """Drop blobs not yet in a pack (after Ctrl-C) and wait for packs already on their way."""
        with self._write_lock:
            builders = list(self._builders.values())
            self._builders.clear()
        for b in builders:
            if b.spool is not None:
                b.spool.discard()
        self.flush()

    # ---- reading blobs -------------------------------------------------------------------------

    def decode_blob(self, pb: PackedBlob, sealed: bytes | memoryview) -> bytes:
        """Decrypt, decompress and verify one blob read from its pack."""
        what = f"{pb.type.json_name} blob {pb.id.hex()[:16]} in pack {pb.pack.hex()[:16]}"
        if len(sealed) != pb.length:
            raise IntegrityError(f"{what}: pack is truncated (got {len(sealed)} of {pb.length} bytes)")
        plain = self.key.open_buffer(sealed, what)
        if pb.compressed:
            plain = compression.decompress(plain, pb.raw_length, what)
        elif not isinstance(plain, bytes):
            plain = bytes(plain)
        if hashlib.sha256(plain).digest() != pb.id:
            raise IntegrityError(f"{what}: content does not match its id")
        return plain

    def lookup(self, btype: BlobType, blob_id: bytes) -> PackedBlob:
        pb = self.index.get(btype, blob_id)
        if pb is None:
            raise NotFound(f"{btype.json_name} blob {blob_id.hex()} is not in the index of "
                           f"{self.backend.location()} (repository damaged: run `mover check`)")
        return pb

    def load_blob(self, btype: BlobType, blob_id: bytes) -> bytes:
        pb = self.lookup(btype, blob_id)
        try:
            sealed = self.backend.load(Handle(FileType.PACK, pb.pack.hex()), pb.offset, pb.length)
        except NotFound:
            raise NotFound(f"pack {pb.pack.hex()} holding {btype.json_name} blob {blob_id.hex()[:16]} "
                           f"is missing from {self.backend.location()}") from None
        return self.decode_blob(pb, sealed)

    def plain_size(self, btype: BlobType, blob_id: bytes) -> int:
        return self.lookup(btype, blob_id).plain_length

    # ---- trees and snapshots -------------------------------------------------------------------

    def load_tree(self, tree_id: bytes) -> list[Node]:
        return self.load_tree_stored(tree_id)[0]

    def load_tree_stored(self, tree_id: bytes) -> tuple[list[Node], bytes | None]:
        """The tree's nodes and, when it is read from the repository rather than found in the
        cache (which keeps the nodes only), its JSON as stored (see :func:`stored_nodes`)."""
        with self._tree_cache_lock:
            nodes = self._tree_cache.get(tree_id)
            if nodes is not None:
                self._tree_cache.move_to_end(tree_id)
                return nodes, None
        raw = self.load_blob(BlobType.TREE, tree_id)
        nodes = decode_tree(raw, f"tree {tree_id.hex()[:16]}")
        with self._tree_cache_lock:
            self._tree_cache[tree_id] = nodes
            while len(self._tree_cache) > 256:
                self._tree_cache.popitem(last=False)
        return nodes, raw

    def save_tree(self, nodes: list[Node], as_stored: Mapping[int, bytes] | None = None) -> bytes:
        """``as_stored``: see :func:`encode_tree`."""
        return self.save_blob(BlobType.TREE, encode_tree(nodes, as_stored))[0]

    def save_snapshot(self, snap: Snapshot) -> bytes:
        snap.id = bytes.fromhex(self.save_unpacked(FileType.SNAPSHOT, snap.to_bytes()))
        return snap.id

    def load_snapshot(self, name: str) -> Snapshot:
        return Snapshot.from_bytes(self.load_unpacked(FileType.SNAPSHOT, name), bytes.fromhex(name),
                                   f"snapshot {name[:8]}")

    def load_snapshots(self, names: list[str]) -> list[Snapshot]:
        """The snapshot files of these names, several at a time (each is a small request)."""
        if len(names) <= 1:
            return [self.load_snapshot(n) for n in names]
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(self.load_snapshot, names))

    def snapshots(self) -> list[Snapshot]:
        """All snapshots, oldest first."""
        snaps = self.load_snapshots([n for n, _ in self.backend.list(FileType.SNAPSHOT)])
        return sorted(snaps, key=lambda s: (s.time, s.id))

    def find_snapshot(self, ref: str, snaps: Iterable[Snapshot] | None = None) -> Snapshot:
        """An id, a unique id prefix, or ``latest``."""
        if ref == "latest":
            all_snaps = list(snaps) if snaps is not None else self.snapshots()
            if not all_snaps:
                raise NotFound(f"repository {self.backend.location()} has no snapshots")
            return max(all_snaps, key=lambda s: (s.time, s.id))
        ref = ref.lower()
        if not ref or any(c not in "0123456789abcdef" for c in ref):
            raise NotFound(f"{ref!r} is not a snapshot id: give a hex id, a prefix of one, or 'latest'")
        if snaps is None:
            matches = [n for n, _ in self.backend.list(FileType.SNAPSHOT) if n.startswith(ref)]
            if len(matches) == 1:
                return self.load_snapshot(matches[0])
        else:
            matches = [s.id.hex() for s in snaps if s.id.hex().startswith(ref)]
            if len(matches) == 1:
                return next(s for s in snaps if s.id.hex() == matches[0])
        if not matches:
            raise NotFound(f"no snapshot {ref} in {self.backend.location()}")
        raise NotFound(f"snapshot prefix {ref} is ambiguous ({len(matches)} snapshots match): give more digits")
