"""Incremental backups: an unchanged tree is not read again and adds no data; a small change adds
only its new chunks; the parent snapshot is chosen as restic chooses it.

"Reads nothing" is measured two independent ways:
- the whole `mover backup` process's `rchar` from /proc/self/io (every read(2) it made, from the
  page cache or not), against a `mover snapshots` run as the baseline for imports and the
  repository; the first backup's rchar proves the measure sees file content;
- in process, every os.open/os.read/os.pread/os.readv and builtin open() on a path inside the
  source tree is recorded while the Archiver runs.
"""

from __future__ import annotations

import builtins
import hashlib
import os
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mover.archiver import chunker
from mover.archiver.pipeline import Archiver, find_parent
from mover.archiver.prescan import Prescan
from mover.errors import RepoError
from mover.repo.backend import FileType
from mover.repo.backend.local import LocalBackend
from mover.repo.blob import BlobType
from mover.repo.index import Index
from mover.repo.repository import Repository
from mover.repo.tree import decode_tree, encode_tree, stored_nodes
from tests.support.mover_cli import TEST_PASSWORD, Mover, listing, read_proc_io
from tests.support.restic_cli import Restic
from tests.support.treekit import assert_same_tree, snapshot_tree

MiB = 1024 * 1024
IS_ROOT = os.geteuid() == 0


def content_bytes(root: Path) -> int:
    """Bytes a full backup reads: every regular file, each hard-link name counted."""
    return sum(e.size for e in snapshot_tree(root).values() if e.type == "file")


def regular_files(root: Path) -> int:
    return sum(1 for e in snapshot_tree(root).values() if e.type == "file")


def data_blobs(repo_path: Path) -> dict[bytes, int]:
    """Data blob id -> plaintext size, from the repository's index."""
    repo = Repository.open(LocalBackend(str(repo_path)), TEST_PASSWORD)
    return {pb.id: pb.plain_length for pb in repo.index if pb.type is BlobType.DATA}


def data_packs(repo_path: Path) -> dict[str, int]:
    return {k: v for k, v in listing(repo_path).items() if k.startswith("data/")}


def test_unchanged_tree_is_not_read_again(full_tree: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = full_tree
    repo = tmp_path / "repo"
    m = Mover(repo)
    m.init()
    io = {name: tmp_path / f"io-{name}" for name in ("baseline", "first", "second")}

    m.run("snapshots", "--json", io_file=io["baseline"])
    first = m.backup(["."], cwd=root, io_file=io["first"])
    before = listing(repo)
    second = m.backup(["."], cwd=root, io_file=io["second"])
    after = listing(repo)

    total = content_bytes(root)
    rchar = {k: read_proc_io(v)["rchar"] for k, v in io.items()}
    first_read = rchar["first"] - rchar["baseline"]
    second_read = rchar["second"] - rchar["baseline"]
    print(f"content {total} B; rchar beyond baseline: first {first_read} B, second {second_read} B")
    # the measure does see file content ...
    assert first_read >= total
    assert first["bytes_read"] == total
    # ... and the second run read none: what it read beyond `mover snapshots` (index, parent
    # snapshot and trees) is a few KiB, while the smallest changed-content file is 4 KiB+
    assert second_read < 256 * 1024, f"second backup read {second_read} bytes"
    assert second["bytes_read"] == 0
    assert second["parent"] == first["snapshot_id"]
    assert second["files_unmodified"] == regular_files(root) == first["files_new"]
    assert second["files_new"] == second["files_changed"] == 0
    assert second["data_blobs"] == 0 and second["data_added"] == 0

    # no new pack, no new index: only one more snapshot file
    added = sorted(set(after) - set(before))
    assert len(added) == 1 and added[0].startswith("snapshots/"), added
    assert {k: v for k, v in after.items() if k in before} == before
    snaps = {s["id"]: s for s in m.snapshots()}
    assert snaps[second["snapshot_id"]]["tree"] == snaps[first["snapshot_id"]]["tree"]
    assert snaps[second["snapshot_id"]]["parent"] == first["snapshot_id"]


class ReadSpy:
    """Counts opens of, and bytes read from, files below `root` (any thread)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
        self.root = os.fsencode(os.path.realpath(root)) + b"/"
        self.fds: set[int] = set()
        self.opened: list[bytes] = []
        self.bytes = 0
        self._lock = threading.Lock()
        real_open, real_read, real_pread = os.open, os.read, os.pread
        real_readv, real_close, real_bopen = os.readv, os.close, builtins.open

        def inside(path, dir_fd=None) -> bool:
            if isinstance(path, int) or dir_fd is not None:
                return False
            p = os.path.realpath(os.fsencode(path))
            return (p + b"/").startswith(self.root)

        def spy_open(path, flags, mode=0o777, *, dir_fd=None):
            fd = real_open(path, flags, mode, dir_fd=dir_fd)
            if inside(path, dir_fd):
                with self._lock:
                    self.fds.add(fd)
                    self.opened.append(os.fsencode(path))
            return fd

        def count(fd: int, n: int) -> None:
            if fd in self.fds:
                with self._lock:
                    self.bytes += n

        def spy_read(fd, n):
            data = real_read(fd, n)
            count(fd, len(data))
            return data

        def spy_pread(fd, n, offset):
            data = real_pread(fd, n, offset)
            count(fd, len(data))
            return data

        def spy_readv(fd, buffers):
            got = real_readv(fd, buffers)
            count(fd, got)
            return got

        def spy_close(fd):
            with self._lock:
                self.fds.discard(fd)
            return real_close(fd)

        def spy_builtin_open(file, *a, **kw):
            if not isinstance(file, int) and inside(file):
                with self._lock:
                    self.opened.append(os.fsencode(file))
            return real_bopen(file, *a, **kw)

        monkeypatch.setattr(os, "open", spy_open)
        monkeypatch.setattr(os, "read", spy_read)
        monkeypatch.setattr(os, "pread", spy_pread)
        monkeypatch.setattr(os, "readv", spy_readv)
        monkeypatch.setattr(os, "close", spy_close)
        monkeypatch.setattr(builtins, "open", spy_builtin_open)

    def reset(self) -> None:
        self.opened.clear()
        self.bytes = 0


def test_unchanged_tree_in_process_opens_no_file(
    full_tree: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = full_tree
    backend = LocalBackend(str(tmp_path / "repo"))
    Repository.init(backend, TEST_PASSWORD)
    # "." from inside: an absolute path would put /tmp and the other directories above the
    # tree in the snapshot, whose times change whenever a parallel test writes to /tmp
    monkeypatch.chdir(root)
    paths = ["."]
    total, nfiles = content_bytes(root), regular_files(root)
    spy = ReadSpy(monkeypatch, root)

    repo = Repository.open(LocalBackend(str(tmp_path / "repo")), TEST_PASSWORD)
    first = Archiver(repo).backup(paths, host="h")
    assert spy.bytes == total == first.stats.bytes_read  # the spy sees what the archiver reads
    assert len(spy.opened) == nfiles

    spy.reset()
    repo = Repository.open(LocalBackend(str(tmp_path / "repo")), TEST_PASSWORD)
    parent = find_parent(repo, paths, "h")
    assert parent is not None and parent.id == first.snapshot.id
    packs_before = {n for n, _ in repo.backend.list(FileType.PACK)}
    second = Archiver(repo).backup(paths, host="h", parent=parent)
    assert spy.opened == [] and spy.bytes == 0
    assert second.stats.bytes_read == 0 and second.stats.data_blobs_added == 0
    assert second.stats.files_unmodified == nfiles
    assert second.snapshot.tree == first.snapshot.tree
    assert {n for n, _ in repo.backend.list(FileType.PACK)} == packs_before


def test_unchanged_file_keeps_its_node_only_when_every_field_matches(tmp_path: Path) -> None:
    """An unchanged file reuses the parent's node only if nothing the stat gives differs: a
    backup that now records atime must record the file's real atime, though neither content
    nor ctime moved (restic's own rule would call the file unchanged)."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}").write_bytes(bytes([i]) * 1000)
    os.utime(src / "f1", ns=(1_000_000_000, 2_000_000_000))  # atime far from mtime
    backend = LocalBackend(str(tmp_path / "repo"))
    Repository.init(backend, TEST_PASSWORD)
    repo = Repository.open(backend, TEST_PASSWORD)
    first = Archiver(repo).backup([str(src)], host="h", contents_at_root=True)
    same = Archiver(repo).backup([str(src)], host="h", contents_at_root=True, parent=first.snapshot)
    assert same.snapshot.tree == first.snapshot.tree and same.stats.files_unmodified == 3
    with_atime = Archiver(repo, with_atime=True).backup([str(src)], host="h", contents_at_root=True,
                                                        parent=first.snapshot)
    assert with_atime.stats.files_unmodified == 3 and with_atime.stats.bytes_read == 0
    nodes = {n.name: n for n in repo.load_tree(with_atime.snapshot.tree)}
    assert nodes["f1"].atime == 1_000_000_000 and nodes["f1"].mtime == 2_000_000_000
    assert {n.name: n.atime for n in repo.load_tree(first.snapshot.tree)}["f1"] == 2_000_000_000
    assert nodes["f1"].content == {n.name: n for n in repo.load_tree(first.snapshot.tree)}["f1"].content


def test_trees_saved_during_the_walk_are_the_trees_saved_at_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restic_bin: str
) -> None:
    """The walk saves a directory's tree once its files are stored, and waits for the oldest
    directory when too many entries are pending: whichever way a tree gets saved, the snapshot
    is the same, and restic reads it."""
    src = tmp_path / "src"
    rng = random.Random(7)
    for d in range(12):
        sub = src / f"d{d:02d}" / "inner"
        sub.mkdir(parents=True)
        for f in range(rng.randint(0, 9)):
            (src / f"d{d:02d}" / f"f{f}").write_bytes(rng.randbytes(rng.randint(0, 5000)))
        (sub / "big").write_bytes(rng.randbytes(chunker.MIN_SIZE + d * 1000))
    trees = {}
    for limit in (10**9, 3):  # never wait, wait nearly always
        monkeypatch.setattr("mover.archiver.pipeline.MAX_UNFINISHED_ENTRIES", limit)
        backend = LocalBackend(str(tmp_path / f"repo-{limit}"))
        Repository.init(backend, TEST_PASSWORD)
        repo = Repository.open(backend, TEST_PASSWORD)
        arch = Archiver(repo)
        res = arch.backup([str(src)], host="h", contents_at_root=True)
        assert not arch._unfinished and res.stats.dirs == 25
        trees[limit] = res.snapshot.tree
        checked = Restic(str(tmp_path / f"repo-{limit}"), TEST_PASSWORD, binary=restic_bin).check()
        assert checked.returncode == 0, checked.stdout + checked.stderr
    assert trees[10**9] == trees[3]


def test_small_change_stores_only_new_chunks(
    full_tree: tuple[Path, dict], tmp_path: Path, restic_bin: str
) -> None:
    root, info = full_tree
    repo = tmp_path / "repo"
    m = Mover(repo)
    m.init()
    first = m.backup(["."], cwd=root)
    blobs_before = data_blobs(repo)
    packs_before = data_packs(repo)

    tiny = root / os.fsdecode(info["paths"]["tiny"])
    big = root / os.fsdecode(info["paths"]["random_large"])
    tiny.write_bytes(b"a small change\n")
    with open(big, "ab") as f:
        f.write(random.Random(99).randbytes(300 * 1024))

    expected: dict[bytes, int] = {}
    for path in (tiny, big):
        chunks, _ = chunker.chunk_buffer(path.read_bytes(), True)
        for c in chunks:
            bid = hashlib.sha256(c).digest()
            if bid not in blobs_before:
                expected[bid] = c.nbytes
    # appending changes only the tail: most of the 12 MiB file's chunks are reused
    assert 2 <= len(expected) <= 4 and sum(expected.values()) < 9 * MiB

    second = m.backup(["."], cwd=root)
    assert second["parent"] == first["snapshot_id"]
    assert second["files_changed"] == 2 and second["files_new"] == 0
    assert second["files_unmodified"] == regular_files(root) - 2
    assert second["bytes_read"] == tiny.stat().st_size + big.stat().st_size
    assert second["data_blobs"] == len(expected)
    assert second["data_added"] == sum(expected.values())

    blobs_after = data_blobs(repo)
    new_blobs = {k: v for k, v in blobs_after.items() if k not in blobs_before}
    assert new_blobs == expected
    new_packs = {k: v for k, v in data_packs(repo).items() if k not in packs_before}
    # the new data: one data pack and one tree pack (trees go in packs of their own)
    assert len(new_packs) == 2, new_packs
    overhead = 64 * 1024  # tree pack, per-blob IV/MAC/header entries, zstd framing
    print(f"new chunks {len(expected)} ({sum(expected.values())} B); new packs {sorted(new_packs.values())}")
    assert sum(new_packs.values()) <= sum(expected.values()) + overhead

    r = Restic(str(repo), TEST_PASSWORD, binary=restic_bin)
    proc = r.check(read_data=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    target = tmp_path / "restored"
    r.restore("latest", target)
    assert_same_tree(root, target, check_owner=IS_ROOT)


def test_parent_selection(full_tree: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = full_tree
    m = Mover(tmp_path / "repo")
    m.init()
    total = content_bytes(root)

    s1 = m.backup(["."], cwd=root, host="h1")
    assert s1["parent"] is None and s1["bytes_read"] == total

    s2 = m.backup(["."], cwd=root, host="h1")  # automatic: latest with the same host and paths
    assert s2["parent"] == s1["snapshot_id"] and s2["bytes_read"] == 0

    s3 = m.backup(["."], cwd=root, host="h2")  # another host: no parent, every file read ...
    assert s3["parent"] is None and s3["bytes_read"] == total
    assert s3["data_blobs"] == 0  # ... but all its chunks are already stored

    s4 = m.backup(["."], cwd=root, host="h1", extra=["--parent", s3["snapshot_id"][:8]])
    assert s4["parent"] == s3["snapshot_id"] and s4["bytes_read"] == 0  # explicit wins

    s5 = m.backup([str(root)], host="h1")  # same paths written absolute: still the same set
    assert s5["parent"] == s4["snapshot_id"]

    s6 = m.backup([str(root / "dir")], host="h1")  # other paths: no parent
    assert s6["parent"] is None
    assert s6["bytes_read"] == content_bytes(root / "dir")

    s7 = m.backup(["."], cwd=root, host="h1", extra=["--force"])
    assert s7["parent"] is None and s7["bytes_read"] == total and s7["data_blobs"] == 0

    recorded = {s["id"]: s.get("parent") for s in m.snapshots()}
    assert recorded[s2["snapshot_id"]] == s1["snapshot_id"]
    assert recorded[s4["snapshot_id"]] == s3["snapshot_id"]
    assert recorded[s1["snapshot_id"]] is None and recorded[s7["snapshot_id"]] is None


def test_a_reader_refreshes_its_index_after_backups_and_a_prune(tmp_path: Path,
                                                                 restic_bin: str) -> None:
    """What a long-lived reader (`kbrowse mount`) relies on to show later snapshots."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(os.urandom(50_000))
    m = Mover(tmp_path / "repo")
    m.init()
    first = m.backup(["."], cwd=src)["snapshot_id"]
    reader = Repository.open(LocalBackend(str(tmp_path / "repo")), TEST_PASSWORD)
    first_tree = reader.load_snapshot(first).tree
    assert reader.index.has(BlobType.TREE, first_tree)
    (src / "b").write_bytes(os.urandom(50_000))
    second = m.backup(["."], cwd=src)["snapshot_id"]
    tree = reader.load_snapshot(second).tree
    assert not reader.index.has(BlobType.TREE, tree)  # written after the index was read
    reader.refresh_index()
    assert reader.index.has(BlobType.TREE, tree)
    assert {n.name for n in reader.load_tree(tree)} == {"a", "b"}
    # a prune replaces index files: the reader reads them all again, so the first snapshot's
    # own tree is gone from its index as from the repository
    Restic(str(tmp_path / "repo"), TEST_PASSWORD, binary=restic_bin).run("forget", first, "--prune")
    assert reader.index.has(BlobType.TREE, first_tree)
    reader.refresh_index()
    assert not reader.index.has(BlobType.TREE, first_tree)
    assert reader.index.has(BlobType.TREE, tree)


def test_long_backup_of_small_files_writes_index_parts_by_blob_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restic_bin: str
) -> None:
    """Index parts are written every INDEX_MAX_BLOBS blobs, not only every INDEX_EVERY_PACKS
    packs, so packs of many small files do not keep every blob's entry in memory to the end."""
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(3)
    for i in range(40):
        (src / f"f{i:02d}").write_bytes(rng.randbytes(3000))
    monkeypatch.setattr("mover.repo.repository.INDEX_MAX_BLOBS", 10)
    backend = LocalBackend(str(tmp_path / "repo"))
    Repository.init(backend, TEST_PASSWORD)
    repo = Repository.open(backend, TEST_PASSWORD)
    repo.pack_size = 12 * 3000  # ~12 blobs a pack: 4 packs of data
    res = Archiver(repo).backup([str(src)], host="h", contents_at_root=True)
    indexes = [n for n, _ in backend.list(FileType.INDEX)]
    assert len(indexes) >= 3, indexes  # one at the end only, before
    fresh = Repository.open(LocalBackend(str(tmp_path / "repo")), TEST_PASSWORD)
    assert all(fresh.index.has(BlobType.DATA, c) for n in fresh.load_tree(res.snapshot.tree) for c in n.content or [])
    checked = Restic(str(tmp_path / "repo"), TEST_PASSWORD, binary=restic_bin).check()
    assert checked.returncode == 0, checked.stdout + checked.stderr


@contextmanager
def loop_device(image: Path) -> Iterator[str]:
    """``image`` attached as a real block device (a loop device), where this machine allows it."""
    if not IS_ROOT or shutil.which("losetup") is None:
        pytest.skip("a loop device needs root and losetup")
    attached = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True, text=True)
    if attached.returncode != 0:
        pytest.skip(f"no loop device here: {attached.stderr.strip()}")
    device = attached.stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "--detach", device], check=True)


def test_a_block_device_is_one_file_of_its_bytes_read_whole_each_time(tmp_path: Path, restic_bin: str) -> None:
    """A real block device (its st_size is 0) is stored as one regular file at the root; backed
    up again unchanged it is read again, adds no data and gives the same tree; restic reads it."""
    rnd = random.Random(11)
    data = rnd.randbytes(3 * MiB) + bytes(2 * MiB) + rnd.randbytes(MiB + 4096)
    image = tmp_path / "disk.img"
    image.write_bytes(data)
    backend = LocalBackend(str(tmp_path / "repo"))
    Repository.init(backend, TEST_PASSWORD)
    repo = Repository.open(backend, TEST_PASSWORD)
    with loop_device(image) as device:
        assert os.stat(device).st_size == 0
        first = Archiver(repo).backup_device(device, "disk", host="h")
        again = Archiver(repo).backup_device(device, "disk", host="h", parent=first.snapshot)
    (node,) = repo.load_tree(first.snapshot.tree)
    assert (node.name, node.type, node.size) == ("disk", "file", len(data))
    assert first.stats.bytes_read == again.stats.bytes_read == len(data)
    assert first.stats.data_added > 0 and again.stats.data_added == 0
    assert again.snapshot.tree == first.snapshot.tree and again.snapshot.parent == first.snapshot.id
    restic = Restic(str(tmp_path / "repo"), TEST_PASSWORD, binary=restic_bin)
    assert restic.check().returncode == 0
    restic.restore(again.snapshot.id.hex(), tmp_path / "out")
    assert (tmp_path / "out" / "disk").read_bytes() == data
    with pytest.raises(RepoError, match=f"^{tmp_path} is not a block device: back its volume up as a file system$"):
        Archiver(repo).backup_device(str(tmp_path), "disk", host="h")


@pytest.mark.parametrize("stat_size, real_size", [(10, 3 * chunker.MIN_SIZE), (5000, 100), (0, 0), (7, 7)])
def test_a_small_file_is_stored_as_read_when_it_changed_size_since_its_stat(
    tmp_path: Path, stat_size: int, real_size: int
) -> None:
    """Small files are read in one call on the batch workers; one that grew past the stat's
    size (here past the minimum chunk size) is cut like a big file instead, one that shrank is
    stored as it now is, and the node's size says what was stored."""
    Repository.init(LocalBackend(str(tmp_path / "repo")), TEST_PASSWORD)
    repo = Repository.open(LocalBackend(str(tmp_path / "repo")), TEST_PASSWORD)
    data = random.Random(real_size).randbytes(real_size)
    path = tmp_path / "f"
    path.write_bytes(data)
    arch = Archiver(repo)
    node = arch._node(str(path), "f", os.lstat(path))
    node.size = stat_size  # as the walk saw it
    got = arch._read_file(str(path), node, False, None)  # a batch worker's call
    assert got is node and node.size == real_size
    chunks, _ = chunker.chunk_buffer(data, True)  # one chunk for a small file, none for an empty one
    assert node.content == [hashlib.sha256(c).digest() for c in chunks]
    if real_size < chunker.MIN_SIZE:
        assert len(chunks) == (1 if real_size else 0)
    repo.flush()
    assert b"".join(repo.load_blob(BlobType.DATA, b) for b in node.content or []) == data
    assert arch.stats.bytes_read == real_size and arch.counters.files == 1


def test_prescanned_walk_reads_extended_attributes_only_where_ctime_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prescan hands the walk listings and lstat results only: the walk stats nothing
    again, and reads a file's extended attributes itself when its ctime moved (an unchanged
    file keeps its parent node's)."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for i in range(4):
        (src / f"f{i}").write_bytes(bytes([i]) * 100)
    (src / "sub" / "g").write_bytes(b"g")
    try:
        os.setxattr(src / "f1", "user.note", b"one")
    except OSError as e:
        pytest.skip(f"no user extended attributes here: {e}")
    backend = LocalBackend(str(tmp_path / "repo"))
    Repository.init(backend, TEST_PASSWORD)
    repo = Repository.open(backend, TEST_PASSWORD)

    def backup(parent):
        scan = Prescan([str(src)])
        while not scan.done:
            time.sleep(0.01)
        stats = []
        real = os.lstat
        monkeypatch.setattr(os, "lstat", lambda p, *a, **k: stats.append(p) or real(p, *a, **k))
        try:
            res = Archiver(repo, prescan=scan).backup([str(src)], host="h", contents_at_root=True,
                                                      parent=parent)
        finally:
            monkeypatch.setattr(os, "lstat", real)
        assert set(stats) == {str(src)}  # the target only: every entry's lstat came from the prescan
        return res

    first = backup(None)
    assert {n.name: n.xattrs for n in repo.load_tree(first.snapshot.tree)}["f1"] == [("user.note", b"one")]
    os.setxattr(src / "f1", "user.note", b"two")  # moves f1's ctime, not its content
    second = backup(first.snapshot)
    assert second.stats.files_unmodified == 4 and second.stats.files_changed == 1
    nodes = {n.name: n for n in repo.load_tree(second.snapshot.tree)}
    assert nodes["f1"].xattrs == [("user.note", b"two")] and nodes["f2"].xattrs == []
    third = backup(second.snapshot)
    assert third.snapshot.tree == second.snapshot.tree and third.stats.files_unmodified == 5


def test_an_unchanged_file_whose_blob_left_the_index_is_read_again(tmp_path: Path) -> None:
    """A directory's unchanged files have their blobs looked up in the index together; when
    one is missing, that file is read and stored again, and the others are still kept."""
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(5)
    for i in range(5):
        (src / f"f{i}").write_bytes(rng.randbytes(2000 + i))
    backend = LocalBackend(str(tmp_path / "repo"))
    Repository.init(backend, TEST_PASSWORD)
    repo = Repository.open(backend, TEST_PASSWORD)
    first = Archiver(repo).backup([str(src)], host="h", contents_at_root=True)
    lost = {n.name: n for n in repo.load_tree(first.snapshot.tree)}["f3"].content
    assert lost is not None and len(lost) == 1
    partial = Index()
    partial.add(pb for pb in repo.index if pb.id != lost[0])
    repo.use_index(partial)
    second = Archiver(repo).backup([str(src)], host="h", contents_at_root=True, parent=first.snapshot)
    assert second.stats.files_unmodified == 4 and second.stats.files_changed == 1
    assert second.stats.bytes_read == 2003 and second.stats.data_blobs_added == 1
    assert second.snapshot.tree == first.snapshot.tree
    assert repo.index.has(BlobType.DATA, lost[0])


def test_a_changed_directory_keeps_the_other_nodes_as_the_parent_tree_stored_them(
    tmp_path: Path, restic_bin: str
) -> None:
    """A directory whose one file changed gets a new tree; every unchanged file's node in it is
    written as the parent tree holds it (here restic's, its times in the local zone, which mover would
    write in UTC), and only the changed one is encoded anew. restic checks and restores it."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for i in range(6):
        (src / "d" / f"f{i}").write_bytes(bytes([i]) * (100 + i))
    (src / "d" / "link").symlink_to("f0")
    repo_path = str(tmp_path / "repo")
    restic = Restic(repo_path, TEST_PASSWORD, env_extra={"TZ": "Europe/Berlin"}, binary=restic_bin)
    restic.init()
    restic.backup(["."], cwd=src)
    repo = Repository.open(LocalBackend(repo_path), TEST_PASSWORD)
    parent = repo.snapshots()[-1]
    old_d = next(n for n in repo.load_tree(parent.tree) if n.name == "d")
    old_raw = repo.load_blob(BlobType.TREE, old_d.subtree)
    assert b'+01:00"' in old_raw or b'+02:00"' in old_raw  # restic wrote the local zone

    (src / "d" / "f3").write_bytes(b"changed")
    res = Archiver(repo).backup([str(src)], host="h", contents_at_root=True, parent=parent)
    assert res.stats.files_changed == 1 and res.stats.files_unmodified == 5
    new_d = next(n for n in repo.load_tree(res.snapshot.tree) if n.name == "d")
    new_raw = repo.load_blob(BlobType.TREE, new_d.subtree)
    old_json = dict(zip((n.name for n in repo.load_tree(old_d.subtree)), stored_nodes(old_raw), strict=True))
    new_nodes = repo.load_tree(new_d.subtree)
    new_json = dict(zip((n.name for n in new_nodes), stored_nodes(new_raw), strict=True))
    assert set(new_json) == set(old_json)
    for name in old_json:  # a symlink's node is made again from its stat, as restic does
        assert (new_json[name] == old_json[name]) == (name not in ("f3", "link")), name
    for name in ("f3", "link"):
        assert b'+0' not in new_json[name] and b'Z"' in new_json[name]  # mover's own encoding
    # byte for byte what encoding the nodes alone would give, but for the kept nodes' times
    assert decode_tree(new_raw, "new") == decode_tree(encode_tree(new_nodes), "plain") == new_nodes
    assert new_raw.startswith(b'{"nodes":[{') and new_raw.endswith(b"}]}\n")

    snap = next(s["id"] for s in restic.snapshots() if s["id"] == res.snapshot.id.hex())
    checked = restic.check()
    assert checked.returncode == 0, checked.stdout + checked.stderr
    out = tmp_path / "out"
    restic.run("restore", snap, "--target", out)
    assert_same_tree(src, out)


def test_a_directory_waiting_for_a_big_file_does_not_hold_back_later_trees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trees of directories walked after one that waits for a big file are saved while it
    is still being read, not all after it: the big file's read here waits until they are."""
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "big").write_bytes(random.Random(3).randbytes(chunker.MIN_SIZE + 1000))
    for d in ("b", "c", "d"):
        (src / d).mkdir()
        (src / d / "link").symlink_to("elsewhere")
    backend = LocalBackend(str(tmp_path / "repo"))
    Repository.init(backend, TEST_PASSWORD)
    repo = Repository.open(backend, TEST_PASSWORD)
    saved: list[bytes] = []
    others_saved = threading.Event()
    save_tree = Repository.save_tree

    def recording_save_tree(self: Repository, nodes, as_stored=None) -> bytes:
        saved.append(b",".join(sorted(n.name_bytes for n in nodes)))
        if len(saved) == 3:
            others_saved.set()
        return save_tree(self, nodes, as_stored)

    store_content = Archiver._store_content

    def slow_store_content(self: Archiver, fd: int, path: str, *args):
        released = others_saved.wait(10)
        saved.append(b"released" if released else b"timed out")
        return store_content(self, fd, path, *args)

    monkeypatch.setattr(Repository, "save_tree", recording_save_tree)
    monkeypatch.setattr(Archiver, "_store_content", slow_store_content)
    res = Archiver(repo).backup([str(src)], host="h", contents_at_root=True)
    assert saved[:4] == [b"link", b"link", b"link", b"released"]
    assert saved[4:] == [b"big", b"a,b,c,d"]
    assert {n.name for n in repo.load_tree(res.snapshot.tree)} == {"a", "b", "c", "d"}
