""":class:`KopiaView`: a kopia repository behind the same read interface as restic's
(``mover.repo.view.SnapshotView``), so listings, ``cat``, ``cp``, the mount and the TUI work on
it unchanged.

Nodes carry kopia object ids: ``Node.content == [oid]`` for a file, ``Node.subtree == oid`` for
a directory (both as ASCII bytes); ``Snapshot.tree`` is the root directory's object id and
``Snapshot.id`` the manifest id's 16 bytes (printed whole, as kopia prints it).
"""

from __future__ import annotations

import contextlib
import functools
import operator
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import msgspec

from mover.errors import IntegrityError, NotFound
from mover.golang import gotime
from mover.kopia.index import key_to_str
from mover.kopia.repository import Chunks, DirEntry, KopiaRepository, ObjectRef
from mover.progress import Counters
from mover.repo.blob import BlobType, PackedBlob
from mover.view.cache import BlobCache
from mover.view.node import GO_DIR, GO_SETGID, GO_SETUID, GO_STICKY, GO_SYMLINK, Node
from mover.view.protocol import RestoreResult
from mover.view.reading import Prefetcher, lookup_path, preload, read_ahead
from mover.view.snapshot import Snapshot

_MODE_BITS = 0o777 | GO_SETUID | GO_SETGID | GO_STICKY
_NAME = operator.attrgetter("name")
_KEPT = 4096  # minutes and modes cached


@dataclass
class KopiaSnapshot(Snapshot):
    root_entry: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def short_id(self) -> str:
        return self.id.hex()


@dataclass(frozen=True, slots=True)
class _Piece(PackedBlob):
    """A piece of a kopia file for the restorer: ``raw_length`` is its plaintext length, ``id``
    its content key (with a leading "Z" when the object itself is compressed, as old
    repositories do)."""

    @property
    def plain_length(self) -> int:
        return self.raw_length


class KopiaView:
    def __init__(self, repo: KopiaRepository, cache_bytes: int = 64 * 1024 * 1024,
                 cache: BlobCache | None = None) -> None:
        self.repo = repo
        self.cache = cache if cache is not None else BlobCache(cache_bytes)
        self._snaps: list[KopiaSnapshot] | None = None
        self._lock = threading.Lock()
        self._prefetcher = Prefetcher()

    def location(self) -> str:
        return self.repo.location()

    # ---- snapshots -------------------------------------------------------------------------

    def snapshots(self) -> list[Snapshot]:
        with self._lock:
            if self._snaps is None:
                self._snaps = self._load_snapshots()
            return list(self._snaps)

    def _load_snapshots(self) -> list[KopiaSnapshot]:
        snaps = []
        for m in self.repo.manifests():
            # checkpoints of snapshots still running, or given up, are not snapshots (yet)
            labels, data = m.get("labels") or {}, m.get("data") or {}
            if labels.get("type") != "snapshot" or data.get("incomplete"):
                continue
            snaps.append(_snapshot(m))
        return sorted(snaps, key=lambda s: (s.time, s.id))

    def refresh(self) -> bool:
        if not self.repo.refresh():  # a new snapshot comes with new index blobs
            return False
        snaps = self._load_snapshots()
        with self._lock:
            old, self._snaps = self._snaps, snaps
        return old is None or [s.id for s in old] != [s.id for s in snaps]

    def matching_snapshots(self, prefix: str) -> list[Snapshot]:
        prefix = prefix.lower()
        return [s for s in self.snapshots() if s.id.hex().startswith(prefix)]

    def find_snapshot(self, ref: str) -> Snapshot:
        snaps = self.snapshots()
        if ref == "latest":
            if not snaps:
                raise NotFound(f"kopia repository {self.location()} has no snapshots")
            return snaps[-1]
        ref = ref.lower()
        if not ref or any(c not in "0123456789abcdef" for c in ref):
            raise NotFound(f"{ref!r} is not a snapshot id: give a kopia manifest id, a prefix of "
                           "one, or 'latest'")
        matches = [s for s in snaps if s.id.hex().startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise NotFound(f"no snapshot {ref} in kopia repository {self.location()}")
        raise NotFound(f"snapshot prefix {ref} is ambiguous ({len(matches)} snapshots match): "
                       "give more digits")

    # ---- trees -----------------------------------------------------------------------------

    def root(self, snap: Snapshot) -> Node:
        e = snap.root_entry if isinstance(snap, KopiaSnapshot) else {}
        try:
            node = _node(msgspec.convert(e, DirEntry)) if e else None
        except ValueError as ex:  # msgspec.ValidationError too
            raise IntegrityError(f"snapshot {snap.short_id}: its root entry is not valid ({ex})") from None
        mtime = node.mtime if node else snap.time
        return Node(name="", type="dir", mode=(node.mode if node else 0o755 | GO_DIR),
                    mtime=mtime, atime=mtime, ctime=mtime, uid=node.uid if node else 0,
                    gid=node.gid if node else 0, subtree=snap.tree)

    def list_dir(self, node: Node) -> list[Node]:
        if node.type != "dir" or node.subtree is None:
            raise NotFound(f"{node.name or '/'} is not a directory")
        oid = node.subtree.decode()
        entries = self.repo.load_dir(oid)
        try:
            nodes = [_node(e) for e in entries]
        except ValueError as ex:
            raise IntegrityError(f"directory object {oid}: an entry is not valid ({ex})") from None
        for n, e in zip(nodes, entries, strict=True):
            if n.type == "symlink":
                n.linktarget = self.repo.read_object(e.obj).decode("utf-8", "surrogateescape")
        # names come from JSON as valid Unicode (msgspec refuses lone surrogates), whose order
        # is their UTF-8 bytes' order: no need to encode each one to sort
        nodes.sort(key=_NAME)
        return nodes

    def lookup(self, snap: Snapshot, path: str) -> Node:
        return lookup_path(self, snap, path)

    # ---- file contents ---------------------------------------------------------------------

    def chunks(self, node: Node) -> Chunks:
        if node.type != "file" or not node.content:
            raise NotFound(f"{node.name} is not a regular file")
        return self.repo.chunks(node.content[0].decode(), node.size)

    def _piece(self, oid: str) -> bytes:
        ref = ObjectRef.parse(oid)
        return self.cache.get_or_load(ref.key, lambda: self.repo.read_direct(oid, ref))

    def read(self, node: Node, offset: int, size: int) -> bytes:
        if node.type != "file":
            raise NotFound(f"{node.name} is not a regular file")
        if offset >= node.size or size <= 0 or not node.content:
            return b""
        ch = self.chunks(node)
        end = min(offset + size, node.size)
        out = bytearray()
        i = max(ch.piece(offset), 0)
        while i < len(ch.oids) and ch.starts[i] < end:
            data = self._piece(ch.oids[i])
            lo = max(offset - ch.starts[i], 0)
            out += data[lo:end - ch.starts[i]]
            i += 1
        return bytes(out)

    def iter_content(self, node: Node) -> Iterator[bytes]:
        if not node.content or node.size == 0:
            return iter(())
        ch = self.chunks(node)
        # pieces are loaded without the cache: a stream read once must not evict what is reused
        return read_ahead(lambda o: self.repo.read_direct(o.decode()), [o.encode() for o in ch.oids])

    def prefetch(self, node: Node, offset: int, size: int) -> None:
        """Start loading the pieces covering [offset, offset + size) into the cache."""
        if node.type != "file" or not node.content or offset >= node.size:
            return
        ch = self.chunks(node)
        i = max(ch.piece(offset), 0)
        while i < len(ch.oids) and ch.starts[i] < offset + size:
            self._prefetcher.submit(functools.partial(self._piece, ch.oids[i]))
            i += 1

    def preload(self) -> None:
        preload(lambda: self.repo.index)  # the property loads it

    def read_lock(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # kopia's readers take no locks

    # ---- restore ---------------------------------------------------------------------------

    def restore(self, node: Node, dest: str, counters: Counters | None = None, *,
                cancel: threading.Event | None = None, workers: int | None = None) -> RestoreResult:
        from mover.restorer import restore  # the restorer is only needed by restores

        return restore(_Source(self), node, dest, counters, cancel=cancel, workers=workers)

    def close(self) -> None:
        self._prefetcher.close()
        self.repo.close()


class _Source:
    """The kopia repository as the restorer's source: a piece of a file is a content in a pack."""

    def __init__(self, view: KopiaView) -> None:
        self.view = view
        self.repo = view.repo

    def location(self) -> str:
        return self.repo.location()

    def is_local(self) -> bool:
        return self.repo.store.is_local()

    def load_tree(self, subtree: bytes) -> list[Node]:
        return self.view.list_dir(Node(name="", type="dir", subtree=subtree))

    def file_blobs(self, node: Node) -> list[PackedBlob]:
        ch = self.view.chunks(node)
        out: list[PackedBlob] = []
        for oid, length in zip(ch.oids, ch.lengths, strict=True):
            ref = ObjectRef.parse(oid)
            info = self.repo.content_info(ref.key)
            if not ref.compressed and info.original_length != length:
                raise IntegrityError(f"object {oid}: content {key_to_str(ref.key)} holds "
                                     f"{info.original_length} bytes, the file's list says {length}")
            out.append(_Piece(BlobType.DATA, (b"Z" if ref.compressed else b"") + ref.key,
                              info.pack.encode(), info.offset, info.packed_length, length))
        return out

    def load_span(self, pack: bytes, offset: int, length: int) -> bytes:
        return self.repo.load_pack(pack.decode(), offset, length)

    def decode_blob(self, pb: PackedBlob, sealed: memoryview) -> bytes:
        z = pb.id[:1] == b"Z"
        key = pb.id[1:] if z else pb.id
        info = self.repo.content_info(key)
        plain = self.repo.decode(info, sealed)
        if z:
            from mover.kopia.format import decompress

            plain = decompress(plain, pb.raw_length, f"content {key_to_str(key)}")
        return plain

    def missing_pack(self, pb: PackedBlob) -> str:
        key = pb.id[1:] if pb.id[:1] == b"Z" else pb.id
        return f"pack {pb.pack.decode()} holding content {key_to_str(key)} is missing from {self.location()}"


def _snapshot(m: dict) -> KopiaSnapshot:
    d = m.get("data") or {}
    try:
        src = d["source"]
        root = d["rootEntry"] or {}
        mid = bytes.fromhex(m["id"])
        return KopiaSnapshot(
            time=gotime.parse_ns(d["startTime"]), tree=str(root["obj"]).encode(),
            paths=[src.get("path") or ""], hostname=src.get("host") or "",
            username=src.get("userName") or "",
            tags=sorted(f"{k.removeprefix('tag:')}:{v}" for k, v in (d.get("tags") or {}).items()),
            id=mid, utc_offset=0,
            source=f"{src.get('userName') or ''}@{src.get('host') or ''}:{src.get('path') or ''}",
            root_entry=root)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise IntegrityError(f"snapshot manifest {m.get('id')}: not valid ({e})") from None


_minutes: dict[str, int] = {}  # "2006-01-02T15:04:" -> its seconds since the epoch, UTC


def _mtime_ns(text: str) -> int:
    """A kopia time in nanoseconds. Kopia writes Go's RFC3339Nano in UTC; that form is read
    here with the minute's seconds cached (one per entry listed: gotime.parse_ns took a third
    of a listing's time), anything else by gotime.parse_ns."""
    base = _minutes.get(text[:17])
    if base is not None and len(text) == 30 and text[19] == "." and text[29] == "Z":
        digits = text[17:19] + text[20:29]  # seconds and nanoseconds, the common case
        if digits.isascii() and digits.isdigit() and digits < "6":
            return base * 1_000_000_000 + int(digits)
    if base is not None and text[-1] == "Z" and text.isascii():
        sec, frac = text[17:19], text[20:-1]
        if sec.isdigit() and sec < "60" and (
                len(text) == 20 or text[19] == "." and 0 < len(frac) <= 9 and frac.isdigit()):
            return (base + int(sec)) * 1_000_000_000 + (int(frac) * gotime.FRACTION_SCALE[len(frac)]
                                                        if frac else 0)
    ns = gotime.parse_ns(text)  # ValueError when it is no time
    if len(text) >= 20 and text[16] == ":" and text[-1] == "Z":
        if len(_minutes) >= _KEPT:
            _minutes.clear()
        _minutes[text[:17]] = ns // 1_000_000_000 - int(text[17:19])
    return ns


_modes: dict[str, int] = {"": 0}  # kopia's octal mode text -> its permission bits


def _mode(text: str) -> int:
    mode = int(text, 8) & _MODE_BITS  # ValueError when it is no octal number
    if len(_modes) < _KEPT:
        _modes[text] = mode
    return mode


def _node(e: DirEntry) -> Node:
    # one call per directory entry listed: positional arguments, the mode's bits cached
    mode = _modes.get(e.mode)
    if mode is None:
        mode = _mode(e.mode)
    mt = _mtime_ns(e.mtime) if e.mtime else gotime.ZERO
    t = e.type
    if t == "f":
        return Node(e.name, "file", mode, mt, mt, mt, e.uid, e.gid, "", "", 0, 0, e.size, 0, "", [],
                    0, [e.obj.encode()], None)
    if t == "d":
        return Node(e.name, "dir", mode | GO_DIR, mt, mt, mt, e.uid, e.gid, "", "", 0, 0, 0, 0, "",
                    [], 0, None, e.obj.encode())
    if t == "s":
        return Node(e.name, "symlink", mode | GO_SYMLINK, mt, mt, mt, e.uid, e.gid, "", "", 0, 0, 0,
                    0, "", [], 0, None, None)
    raise ValueError(f"entry {e.name!r} of unknown type {e.type!r}")
