"""Prune: drop the data no snapshot uses any more, the way restic 0.14 does, byte-compatible.

The plan is restic's: every blob the snapshots reach is used; a pack with no used blob is
deleted, a pack with some unused blobs is repacked (its used blobs copied into new packs)
until the unused space left is below ``--max-unused`` (5% of the used size by default), and
tree packs, mixed packs and small packs are repacked first. The index is then rewritten
without the packs that go.

Crash safety comes from the order of the writes, each of which leaves a repository restic
accepts: (1) packs no index names are deleted (nothing refers to them); (2) the kept blobs of
repacked packs are written to new packs (until indexed they are only unreferenced extras);
(3) the new index files are written, the one listing the old ones as superseded last; (4) the
old index files are deleted (the new ones already name every kept pack); (5) the packs that go
are deleted (by now no index names them). A SIGKILL anywhere leaves at worst unreferenced
packs or duplicate index entries, both of which `restic check` accepts and the next prune
removes. All of it runs under restic's exclusive lock, so no backup can add a blob that names
a pack being deleted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from mover.errors import IntegrityError, RepoError
from mover.progress import Counters
from mover.repo import compression
from mover.repo import pack as packfmt
from mover.repo.backend import FileType, Handle
from mover.repo.blob import BlobType, PackedBlob
from mover.repo.index import decode_index_file, encode_index_file
from mover.repo.lock import Lock
from mover.repo.pack import PackBuilder
from mover.repo.tree import decode_tree
from mover.view.snapshot import Snapshot

INDEX_MAX_BLOBS = 50000  # restic 0.14 starts a new index file at this many blobs
READ_AHEAD = 2  # packs being read and verified while the current one is copied
_MIXED = -1  # a pack holding both blob types


class Steps(Protocol):
    """What prune tells its user: restic's messages, counted phases, and the plan."""

    def say(self, text: str) -> None: ...

    def begin(self, what: str, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def end(self) -> None: ...

    def plan(self, stats: PruneStats) -> None: ...


class _Silent:
    def say(self, text: str) -> None:
        pass

    def begin(self, what: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def end(self) -> None:
        pass

    def plan(self, stats: PruneStats) -> None:
        pass


@dataclass
class Count:
    blobs: int = 0
    size: int = 0

    def add(self, size: int, blobs: int = 1) -> None:
        self.blobs += blobs
        self.size += size


@dataclass
class PruneStats:
    """restic's pruneStats: blob counts and stored sizes (encrypted lengths) by fate."""

    snapshots: int = 0
    used: Count = field(default_factory=Count)
    duplicate: Count = field(default_factory=Count)
    unused: Count = field(default_factory=Count)
    remove: Count = field(default_factory=Count)  # blobs in packs deleted whole
    repack: Count = field(default_factory=Count)  # blobs in packs repacked
    repack_removed: Count = field(default_factory=Count)  # of those, the ones dropped
    unreferenced_size: int = 0  # packs no index names
    packs_used: int = 0
    packs_partly_used: int = 0
    packs_unused: int = 0
    packs_unreferenced: int = 0
    packs_keep: int = 0
    packs_repack: int = 0
    packs_remove: int = 0
    dry_run: bool = False

    @property
    def total_blobs(self) -> int:
        return self.used.blobs + self.unused.blobs + self.duplicate.blobs

    @property
    def total_size(self) -> int:
        return self.used.size + self.duplicate.size + self.unused.size + self.unreferenced_size

    @property
    def unused_size(self) -> int:
        return self.duplicate.size + self.unused.size

    @property
    def prune_blobs(self) -> int:
        return self.remove.blobs + self.repack_removed.blobs

    @property
    def prune_size(self) -> int:
        return self.remove.size + self.repack_removed.size + self.unreferenced_size

    @property
    def unused_after(self) -> int:
        return _u64(self.unused_size - self.remove.size - self.repack_removed.size)


def parse_max_unused(text: str) -> Callable[[int], int]:
    """restic's --max-unused: 'unlimited', a percentage below 100 (of the used size once the
    unused part is gone: p/(100-p) x used), or a size in bytes with k/m/g/t suffixes."""
    value = text.strip()
    if not value:
        raise RepoError(f"invalid value for --max-unused: {text!r}")
    if value == "unlimited":
        return lambda used: 1 << 64
    if value.endswith("%"):
        try:
            p = float(value[:-1])
        except ValueError:
            raise RepoError(f"invalid percentage {text!r} passed for --max-unused") from None
        if p < 0:
            raise RepoError("percentage for --max-unused must be positive")
        if p >= 100:
            raise RepoError("percentage for --max-unused must be below 100%")
        return lambda used: int(p / (100 - p) * used)
    size = parse_size(value, "--max-unused")
    return lambda used: size


def parse_size(text: str, option: str) -> int:
    """restic's parseSizeStr: an integer with an optional k/m/g/t (binary) suffix."""
    mult = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}.get(text[-1:].lower())
    digits = text[:-1] if mult else text
    try:
        n = int(digits)
    except ValueError:
        raise RepoError(f"invalid number of bytes {text!r} for {option}") from None
    return n * (mult or 1)


@dataclass
class _PackInfo:
    used_blobs: int = 0
    unused_blobs: int = 0
    used_size: int = 0
    unused_size: int = 0
    type: int | None = None  # BlobType, _MIXED, or None before the first blob
    uncompressed: bool = False

    @property
    def size(self) -> int:
        return self.used_size + self.unused_size


@dataclass
class PrunePlan:
    remove_first: dict[str, int]  # packs no index names (file name -> size)
    repack: set[bytes]
    remove: set[bytes]
    ignore: set[bytes]  # packs dropped from the index (missing and unneeded)
    keep_blobs: set[tuple[BlobType, bytes]]  # used blobs only found in repacked packs


def prune(repo, counters: Counters | None = None, *, dry_run: bool = False,
          max_unused: str = "5%", ignore_snapshots: Iterable[bytes] = (),
          steps: Steps | None = None, locked: bool = False) -> PruneStats:
    """Remove unused data from ``repo`` under restic's exclusive lock (``locked``: the caller
    holds it, as `forget --prune` does). ``ignore_snapshots``: count these as gone already (a
    dry-run forget). ``counters``: pack files repacked or deleted of those to be, and bytes
    repacked of bytes to repack. Ctrl-C stops it between writes; what it leaves is valid (see above)."""
    limit = parse_max_unused(max_unused)
    run = _Prune(repo, counters or Counters(), steps or _Silent(), limit, set(ignore_snapshots))
    if locked:
        return run.run(dry_run)
    with Lock(repo, exclusive=True).acquire():
        return run.run(dry_run)


class _Prune:
    def __init__(self, repo, counters: Counters, steps: Steps, limit: Callable[[int], int],
                 ignore: set[bytes]) -> None:
        self.repo = repo
        self.c = counters
        self.steps = steps
        self.limit = limit
        self.ignore = ignore
        self.stats = PruneStats()
        self.where = repo.backend.location()

    def run(self, dry_run: bool) -> PruneStats:
        st = self.steps
        self.stats.dry_run = dry_run
        st.say("loading indexes...")
        index_names, by_pack = self._load_index()
        st.say("loading all snapshots...")
        snaps = self._snapshots()
        self.stats.snapshots = len(snaps)
        st.say(f"finding data that is still in use for {len(snaps)} snapshots")
        used = self._used_blobs(snaps)
        st.say("searching used packs...")
        infos, keep_blobs = self._pack_infos(by_pack, used)
        st.say("collecting packs for deletion and repacking")
        plan = self._decide(infos, keep_blobs, by_pack)
        # a repacked pack counts twice: once copied, once deleted
        self.c.add_total(files=len(plan.remove_first) + len(plan.repack) + len(plan.remove | plan.repack),
                         nbytes=self.stats.repack.size)
        self.c.scanning = False
        st.plan(self.stats)
        if dry_run:
            return self.stats
        if plan.remove_first:
            st.say("deleting unreferenced packs")
            self._delete(FileType.PACK, list(plan.remove_first))
        new_packs: dict[bytes, list[PackedBlob]] = {}
        if plan.repack:
            st.say("repacking packs")
            new_packs = self._repack(plan, by_pack)
        gone = plan.ignore | plan.remove | plan.repack
        if gone:
            kept = {pid: blobs for pid, blobs in by_pack.items() if pid not in gone}
            kept.update(new_packs)
            st.say("rebuilding index")
            self._write_index(kept, index_names)
            st.say("deleting obsolete index files")
            self._delete(FileType.INDEX, index_names, count=False)
        if plan.remove or plan.repack:
            st.say(f"removing {len(plan.remove | plan.repack)} old packs")
            self._delete(FileType.PACK, [p.hex() for p in sorted(plan.remove | plan.repack)])
        st.say("done")
        self.repo.refresh_index()  # a long-lived caller reads through the new index files
        return self.stats

    # ---- reading the repository ------------------------------------------------------------

    def _load_index(self) -> tuple[list[str], dict[bytes, list[PackedBlob]]]:
        """Every index file's entries by pack, sorted by offset; the same entry in two files
        (an interrupted prune leaves old and new ones) counts once."""
        names = sorted(n for n, _ in self.repo.backend.list(FileType.INDEX))
        entries: dict[bytes, dict[tuple, PackedBlob]] = {}

        def load(name: str) -> list[PackedBlob]:
            return decode_index_file(self.repo.load_unpacked(FileType.INDEX, name), f"index/{name}")[1]

        with _pool(8) as pool:
            for blobs in pool.map(load, names):
                for b in blobs:
                    entries.setdefault(b.pack, {})[(b.type, b.id, b.offset, b.length)] = b
        return names, {pid: sorted(d.values(), key=lambda b: b.offset) for pid, d in entries.items()}

    def _snapshots(self) -> list[Snapshot]:
        names = [n for n, _ in self.repo.backend.list(FileType.SNAPSHOT)
                 if bytes.fromhex(n) not in self.ignore]
        with _pool(8) as pool:
            return list(pool.map(self.repo.load_snapshot, names))

    def _used_blobs(self, snaps: list[Snapshot]) -> tuple[set[bytes], set[bytes]]:
        """(tree ids, data blob ids) the snapshots reach; a tree that cannot be read stops the
        prune, since what it references would otherwise count as unused."""
        trees: set[bytes] = set()
        data: set[bytes] = set()

        def load(tid: bytes) -> list:
            return decode_tree(self.repo.load_blob(BlobType.TREE, tid), f"tree {tid.hex()[:16]}")

        self.steps.begin("snapshots", len(snaps))
        with _pool(8) as pool:
            for snap in snaps:
                frontier = [] if snap.tree in trees else [snap.tree]
                trees.update(frontier)
                while frontier:
                    following = []
                    for tid, nodes in zip(frontier, pool.map(load, frontier), strict=True):
                        for n in nodes:
                            if n.type == "file":
                                data.update(n.content or ())
                            elif n.type == "dir":
                                if n.subtree is None:
                                    raise IntegrityError(f"tree {tid.hex()[:16]} of snapshot "
                                                         f"{snap.short_id}: directory {n.name!r} "
                                                         f"has no subtree; run `mover check`")
                                if n.subtree not in trees:
                                    trees.add(n.subtree)
                                    following.append(n.subtree)
                    frontier = following
                self.steps.advance()
        self.steps.end()
        return trees, data

    # ---- planning (restic's packInfoFromIndex and decidePackAction) -------------------------

    def _pack_infos(self, by_pack: dict[bytes, list[PackedBlob]],
                    used: tuple[set[bytes], set[bytes]]
                    ) -> tuple[dict[bytes, _PackInfo], set[tuple[BlobType, bytes]]]:
        s = self.stats
        wanted = {BlobType.TREE: set(used[0]), BlobType.DATA: set(used[1])}
        keep: set[tuple[BlobType, bytes]] = set()
        copies: dict[tuple[BlobType, bytes], int] = {}
        for blobs in by_pack.values():
            for b in blobs:
                k = (b.type, b.id)
                if b.id in wanted[b.type]:
                    wanted[b.type].discard(b.id)
                    keep.add(k)
                    s.used.add(b.length)
                elif k in keep:
                    copies[k] = copies.get(k, 1) + 1
                    s.duplicate.add(b.length)
                else:
                    s.unused.add(b.length)
        missing = [(t, i) for t, ids in wanted.items() for i in ids]
        if missing:
            t, i = missing[0]
            raise IntegrityError(
                f"{len(missing)} blobs the snapshots use are not in the index of {self.where} "
                f"(e.g. {t.json_name} blob {i.hex()}): data seems to be missing, so prune "
                f"will not start; run `mover check`")
        infos: dict[bytes, _PackInfo] = {}
        for pid, blobs in by_pack.items():
            ip = infos[pid] = _PackInfo(used_size=packfmt.expected_size(blobs)
                                        - sum(b.length for b in blobs))
            for b in blobs:
                bt = int(b.type)
                ip.type = bt if ip.type in (None, bt) else _MIXED
                k = (b.type, b.id)
                if k in copies:
                    pass  # settled below, once every pack's own used blobs are known
                elif k in keep:
                    ip.used_size += b.length
                    ip.used_blobs += 1
                else:
                    ip.unused_size += b.length
                    ip.unused_blobs += 1
                if not b.compressed:
                    ip.uncompressed = True
        if copies:
            # one copy of a blob stored more than once is used: preferably one in a pack that
            # is used anyway, else the last copy seen (restic's rule). restic sees them in
            # whatever order its index gives; packs with the most unused data come first
            # here, so the copies in clean packs (those an interrupted prune just wrote) win
            # and the old packs can go whole
            for pid in sorted(by_pack, key=lambda p: (-infos[p].unused_size, p)):
                ip = infos[pid]
                for b in by_pack[pid]:
                    k = (b.type, b.id)
                    count = copies.get(k)
                    if count is None:
                        continue
                    if count == 0:
                        ip.unused_size += b.length
                        ip.unused_blobs += 1
                    elif ip.used_blobs > 0 or count == 1:
                        ip.used_size += b.length
                        ip.used_blobs += 1
                        copies[k] = 0
                    else:
                        ip.unused_size += b.length
                        ip.unused_blobs += 1
                        copies[k] = count - 1
        return infos, keep

    def _decide(self, infos: dict[bytes, _PackInfo], keep_blobs: set[tuple[BlobType, bytes]],
                by_pack: dict[bytes, list[PackedBlob]]) -> PrunePlan:
        s = self.stats
        target = self.repo.pack_size // 25  # restic repacks only very small full packs
        remove_first: dict[str, int] = {}
        remove: set[bytes] = set()
        candidates: list[tuple[bytes, _PackInfo]] = []
        small: list[tuple[bytes, _PackInfo]] = []
        pending = dict(infos)
        self.steps.begin("packs processed", len(infos))
        for name, size in self.repo.backend.list(FileType.PACK):
            pid = bytes.fromhex(name)
            ip = pending.pop(pid, None)
            if ip is None:
                remove_first[name] = size
                s.unreferenced_size += size
                continue
            if ip.size != size and ip.used_blobs:
                raise IntegrityError(f"pack {name} in {self.where}: the index implies "
                                     f"{ip.size} bytes, the file has {size}; prune will not "
                                     f"start (run `restic rebuild-index`)")
            if ip.used_blobs == 0:
                s.packs_unused += 1
            elif ip.unused_blobs == 0:
                s.packs_used += 1
            else:
                s.packs_partly_used += 1
            # v2 repositories keep trees compressed: a pack of uncompressed trees is repacked
            ip.uncompressed = (self.repo.version >= 2 and ip.type == BlobType.TREE
                               and ip.uncompressed)
            if ip.used_blobs == 0:
                remove.add(pid)
                s.remove.add(ip.unused_size, ip.unused_blobs)
            elif ip.unused_blobs == 0 and ip.type != _MIXED and not ip.uncompressed:
                if size >= target:
                    s.packs_keep += 1
                else:
                    small.append((pid, ip))
            else:
                candidates.append((pid, ip))
            self.steps.advance()
        self.steps.end()
        ignore: set[bytes] = set()
        for pid, ip in list(pending.items()):  # indexed but not stored
            if ip.used_blobs == 0:
                ignore.add(pid)
                s.remove.add(ip.unused_size, ip.unused_blobs)
                del pending[pid]
        if pending:
            raise IntegrityError(
                f"the index of {self.where} references {len(pending)} needed pack files which "
                f"are missing (e.g. {next(iter(pending)).hex()}); prune will not start")
        if len(small) < 10:
            s.packs_keep += len(small)  # too few to be worth it (and no endless repacking)
        else:
            candidates += small
        candidates.sort(key=lambda c: (_repack_order(c[1], target), c[0]))
        repack: set[bytes] = set()
        max_unused_after = self.limit(s.used.size)
        for pid, ip in candidates:
            # restic's uint64: when the packs to delete hold duplicates the difference wraps
            # round, the limit counts as not reached and the pack is repacked
            reached = _u64(s.unused.size - s.remove.size - s.repack_removed.size) < max_unused_after
            if ip.type != BlobType.DATA or ip.uncompressed or not (reached and ip.size >= target):
                repack.add(pid)
                s.repack.add(ip.size, ip.used_blobs + ip.unused_blobs)
                s.repack_removed.add(ip.unused_size, ip.unused_blobs)
            else:
                s.packs_keep += 1
        s.packs_unreferenced = len(remove_first)
        s.packs_repack = len(repack)
        s.packs_remove = len(remove)
        if repack:
            # blobs also stored in a pack that stays need no copy
            for pid, blobs in by_pack.items():
                if pid not in repack and pid not in remove:
                    for b in blobs:
                        keep_blobs.discard((b.type, b.id))
        else:
            keep_blobs = set()
        return PrunePlan(remove_first, repack, remove, ignore, keep_blobs)

    # ---- writing ----------------------------------------------------------------------------

    def _repack(self, plan: PrunePlan, by_pack: dict[bytes, list[PackedBlob]]
                ) -> dict[bytes, list[PackedBlob]]:
        """Copy the kept blobs of the packs to repack into new packs, each blob checked (MAC,
        and its plaintext against its id) before it is copied; returns the new packs."""
        keep = plan.keep_blobs
        builders: dict[BlobType, PackBuilder] = {}
        written: dict[bytes, list[PackedBlob]] = {}
        order = sorted(plan.repack)
        self.steps.begin("packs repacked", len(order))
        for pid, blobs in self._read_kept(order, by_pack, keep):
            for b, sealed, raw_length in blobs:
                k = (b.type, b.id)
                if k not in keep:
                    continue  # a second copy among the repacked packs
                keep.discard(k)
                builder = builders.setdefault(b.type, PackBuilder())
                builder.add(b.type, b.id, sealed, raw_length)
                if builder.size >= self.repo.pack_size:
                    self._save_pack(builders.pop(b.type), written)
            self.c.done(files=1, nbytes=packfmt.expected_size(by_pack[pid]))
            self.steps.advance()
        for builder in builders.values():
            self._save_pack(builder, written)
        self.steps.end()
        if keep:
            t, i = next(iter(keep))
            raise IntegrityError(f"{len(keep)} used blobs were not found in the packs being "
                                 f"repacked (e.g. {t.json_name} blob {i.hex()}); nothing was "
                                 f"deleted")
        return written

    def _read_kept(self, order: list[bytes], by_pack: dict[bytes, list[PackedBlob]],
                   keep: set[tuple[BlobType, bytes]]) -> Iterator[tuple[bytes, list]]:
        """(pack id, [(blob, sealed bytes to store, raw length)]) of each pack in ``order``,
        read and checked on worker threads a few packs ahead (AES, SHA-256 and zstd release
        the GIL)."""
        wanted = set(keep)  # the workers read a copy; the caller's set shrinks as it copies

        def load(pid: bytes) -> list:
            blobs = [b for b in by_pack[pid] if (b.type, b.id) in wanted]
            if not blobs:
                return []  # each of its used blobs is also in a pack that stays
            # only the span of the blobs to keep: the unused ones around them are never read
            lo, hi = blobs[0].offset, blobs[-1].offset + blobs[-1].length
            data = self.repo.backend.load(Handle(FileType.PACK, pid.hex()), lo, hi - lo)
            out = []
            for b in blobs:
                sealed = memoryview(data)[b.offset - lo:b.offset - lo + b.length]
                plain = self.repo.decode_blob(b, sealed)
                if self.repo.version >= 2 and not b.compressed and plain:
                    # restic compresses what it repacks into a v2 repository
                    out.append((b, self.repo.key.seal(compression.compress(plain)), len(plain)))
                else:
                    out.append((b, bytes(sealed), b.raw_length))
            return out

        with _pool(READ_AHEAD) as pool:
            futures: list[Future] = []
            nxt = 0
            for i, pid in enumerate(order):
                while nxt < len(order) and nxt < i + READ_AHEAD:
                    futures.append(pool.submit(load, order[nxt]))
                    nxt += 1
                yield pid, futures[i].result()
                futures[i] = None  # type: ignore[call-overload]  # let the pack's bytes go

    def _save_pack(self, builder: PackBuilder, written: dict[bytes, list[PackedBlob]]) -> None:
        pack_id, data, blobs = builder.finish(self.repo.key)
        if hashlib.sha256(data).digest() != pack_id:  # pragma: no cover - finish() names it so
            raise IntegrityError("internal error: pack id does not match its content")
        self.repo.backend.save(Handle(FileType.PACK, pack_id.hex()), data)
        written[pack_id] = blobs

    def _write_index(self, packs: dict[bytes, list[PackedBlob]], old: list[str]) -> None:
        """New index files for ``packs``, at most INDEX_MAX_BLOBS blobs each; the last one
        written lists the old files as superseded, so it only exists once all others do."""
        parts: list[dict[bytes, list[PackedBlob]]] = [{}]
        n = 0
        for pid in sorted(packs):
            if n >= INDEX_MAX_BLOBS:
                parts.append({})
                n = 0
            parts[-1][pid] = packs[pid]
            n += len(packs[pid])
        self.steps.begin("packs processed", len(packs))
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            self.repo.save_unpacked(FileType.INDEX,
                                    encode_index_file(part, [bytes.fromhex(o) for o in old] if last else ()))
            self.steps.advance(len(part))
        self.steps.end()

    def _delete(self, t: FileType, names: list[str], count: bool = True) -> None:
        self.steps.begin("files deleted", len(names))
        with _pool(8) as pool:
            for _ in pool.map(lambda n: self.repo.backend.remove(Handle(t, n)), names):
                self.steps.advance()
                if count:
                    self.c.done(files=1)
        self.steps.end()


@contextmanager
def _pool(workers: int) -> Iterator[ThreadPoolExecutor]:
    """A thread pool that, on an error or Ctrl-C, drops the work not yet started: only what
    is under way is waited for, so a stop is prompt (every write is safe to stop after)."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix="prune")
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _u64(n: int) -> int:
    return n % (1 << 64)


def _repack_order(ip: _PackInfo, target: int) -> tuple:
    """restic's order: non-data packs first, then packs below the target size, then by the
    share of unused space, highest first."""
    share = ip.unused_size / ip.size if ip.size else 0.0
    return (ip.type == BlobType.DATA, ip.size >= target, -share)
