"""Repository consistency check, with restic's rules (and optionally reading all data)."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mover.errors import IntegrityError, RepoError
from mover.repo import pack as packfmt
from mover.repo.backend import FileType, Handle
from mover.repo.blob import BlobType, PackedBlob
from mover.repo.index import Index, decode_index_file
from mover.repo.repository import Repository

# restic 0.14's words after its index hints: both findings are harmless, and restic (which reads
# this format) can tidy them up; the mover has no command that rewrites packs or indexes
DUPLICATE_ADVICE = "This is non-critical, you can run `restic rebuild-index' to correct this"
MIXED_ADVICE = ("Mixed packs with tree and data blobs are non-critical, you can run `restic prune` "
                "to correct this.")


@dataclass
class CheckReport:
    errors: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)  # printed once after the hints
    packs: int = 0
    snapshots: int = 0
    trees: int = 0
    packs_read: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


def check(repo: Repository, read_data: bool = False,
          progress: Callable[[str, int, int], None] | None = None) -> CheckReport:
    rep = CheckReport()
    by_pack = _load_indexes(repo, rep)
    readable = Index()
    for blobs in by_pack.values():
        readable.add(blobs)
    repo.use_index(readable)
    index_damaged = bool(rep.errors)  # an index file could not be read
    stored = dict(repo.backend.list(FileType.PACK))
    rep.packs = len(stored)
    for pid, blobs in by_pack.items():
        name = pid.hex()
        if name not in stored:
            rep.errors.append(f"pack {name}: listed in the index but missing")
        elif stored[name] != packfmt.expected_size(blobs):
            rep.errors.append(f"pack {name}: unexpected file size {stored[name]}, "
                              f"the index implies {packfmt.expected_size(blobs)}")
    for name in stored:
        if bytes.fromhex(name) not in by_pack:
            rep.hints.append(f"pack {name}: not referenced in any readable index" + (
                " (perhaps listed in the damaged index file)" if index_damaged else
                " (left by an interrupted backup; harmless)"))
    names = [p for p in stored if bytes.fromhex(p) in by_pack] if read_data else []
    pool = ThreadPoolExecutor(4)
    try:
        # the packs are read (file reads, sha256, AES and zstd, mostly without the GIL) while
        # this thread walks the trees (Python); their errors still come after the trees'
        reads = pool.map(lambda n: _read_pack(repo, n, stored[n], by_pack[bytes.fromhex(n)]), names)
        _check_snapshots(repo, rep)
        for i, errs in enumerate(reads):
            rep.errors.extend(errs)
            rep.packs_read += 1
            if progress:
                progress("read data", i + 1, len(names))
    finally:  # on Ctrl-C, only the packs being read are finished
        pool.shutdown(wait=True, cancel_futures=True)
    return rep


def _load_indexes(repo: Repository, rep: CheckReport) -> dict[bytes, list[PackedBlob]]:
    """Blobs of every indexed pack, by offset; the same entry in two index files counts once."""
    entries: dict[bytes, dict[tuple, PackedBlob]] = defaultdict(dict)
    listed_in: dict[bytes, set[str]] = defaultdict(set)
    for name, _ in repo.backend.list(FileType.INDEX):
        try:
            _sup, blobs = decode_index_file(repo.load_unpacked(FileType.INDEX, name), f"index/{name}")
        except RepoError as e:
            rep.errors.append(f"index {name}: {e}")
            continue
        for b in blobs:
            entries[b.pack][(b.type, b.id, b.offset, b.length)] = b
            listed_in[b.pack].add(name)
    by_pack = {pid: sorted(d.values(), key=lambda b: b.offset) for pid, d in entries.items()}
    _index_hints(rep, by_pack, listed_in)
    for pid, blobs in by_pack.items():
        pos = 0
        for b in blobs:
            if b.offset != pos:
                rep.errors.append(f"pack {pid.hex()}: index has a gap or overlap at offset {b.offset}")
                break
            pos += b.length
    return by_pack


def _index_hints(rep: CheckReport, by_pack: dict[bytes, list[PackedBlob]],
                 listed_in: dict[bytes, set[str]]) -> None:
    """What restic 0.14 says while loading the index, in its words: packs that several index
    files list, and packs of both trees and data (old restic versions wrote them). Neither loses
    data; restic rewrites them, the mover only reads them."""
    duplicated = sorted(pid for pid in by_pack if len(listed_in[pid]) > 1)
    for pid in duplicated:
        names = " ".join(sorted(n[:8] for n in listed_in[pid]))
        rep.hints.append(f"pack {pid.hex()} contained in several indexes: {{{names}}}")
    mixed = sorted(pid for pid, blobs in by_pack.items() if len({b.type for b in blobs}) > 1)
    for pid in mixed:
        rep.hints.append(f"pack {pid.hex()[:8]} contains a mix of tree and data blobs")
    if duplicated:
        rep.advice.append(DUPLICATE_ADVICE)
    if mixed:
        rep.advice.append(MIXED_ADVICE)


def _check_snapshots(repo: Repository, rep: CheckReport) -> None:
    seen: set[bytes] = set()
    for name, _ in repo.backend.list(FileType.SNAPSHOT):
        try:
            snap = repo.load_snapshot(name)
        except RepoError as e:
            rep.errors.append(f"snapshot {name}: {e}")
            continue
        rep.snapshots += 1
        stack = [(snap.tree, "/")]
        while stack:
            tid, path = stack.pop()
            if tid in seen:
                continue
            seen.add(tid)
            rep.trees += 1
            try:
                nodes = repo.load_tree(tid)
            except RepoError as e:
                rep.errors.append(f"snapshot {name[:8]} {path}: tree {tid.hex()[:16]}: {e}")
                continue
            for n in nodes:
                p = path.rstrip("/") + "/" + n.name
                if not n.name:
                    rep.errors.append(f"snapshot {name[:8]} {path}: node with an empty name")
                if n.type == "file":
                    if n.content is None:
                        rep.errors.append(f"snapshot {name[:8]} {p}: file has no content list")
                        continue
                    for b in n.content:
                        if not repo.index.has(BlobType.DATA, b):
                            rep.errors.append(f"snapshot {name[:8]} {p}: data blob {b.hex()[:16]} not in index")
                elif n.type == "dir":
                    if n.subtree is None:
                        rep.errors.append(f"snapshot {name[:8]} {p}: directory has no subtree")
                    else:
                        stack.append((n.subtree, p))


# a pack is read in spans of whole blobs of about this size (the header first, from its end):
# four readers then hold a few MiB each instead of a whole pack each
_SPAN = 4 * 1024 * 1024
_TAIL = 64 * 1024


def _read_pack(repo: Repository, name: str, size: int, indexed: list[PackedBlob]) -> list[str]:
    h = Handle(FileType.PACK, name)
    what = f"pack {name}"
    header: list[PackedBlob] | None = None
    header_errs: list[str] = []
    try:
        tail = repo.backend.load(h, max(size - _TAIL, 0), min(size, _TAIL))
        hlen = packfmt.header_length(tail[-4:], size, what)
        if hlen + 4 > len(tail):
            tail = repo.backend.load(h, size - 4 - hlen, hlen + 4)
        header = packfmt.parse_header(repo.key, tail[len(tail) - 4 - hlen:-4], bytes.fromhex(name),
                                      what, allow_compressed=repo.version >= 2)
    except IntegrityError as e:
        header_errs.append(str(e))
    except RepoError as e:
        return [f"pack {name}: {e}"]
    if header is not None and [(b.type, b.id, b.offset, b.length) for b in header] != \
            [(b.type, b.id, b.offset, b.length) for b in indexed]:
        header_errs.append(f"pack {name}: header does not match the index")
    digest = hashlib.sha256()
    blob_errs: list[str] = []
    blobs = sorted(header or (), key=lambda b: b.offset)
    pos = i = 0
    while pos < size:
        end = pos + _SPAN
        first = i
        while i < len(blobs) and blobs[i].offset < end and blobs[i].offset + blobs[i].length <= size:
            end = max(end, blobs[i].offset + blobs[i].length)
            i += 1
        end = min(end, size)
        try:
            span = repo.backend.load(h, pos, end - pos)
        except RepoError as e:
            return [f"pack {name}: {e}"]
        digest.update(span)
        view = memoryview(span)
        for b in blobs[first:i]:
            try:
                repo.decode_blob(b, view[b.offset - pos:b.offset - pos + b.length])
            except RepoError as e:
                blob_errs.append(str(e))
        if len(span) < end - pos:
            break  # shorter than listed: the digest says so
        pos = end
    errs = [f"pack {name}: content does not match its name (damaged)"] \
        if digest.hexdigest() != name else []
    return errs + header_errs + blob_errs
