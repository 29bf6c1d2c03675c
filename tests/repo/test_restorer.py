"""mover.restorer: snapshots restored into a directory, in-process.

Repositories here are written with mover's own Repository API, because the attacks need trees
no archiver would write (names like ``..``, a symlink and a directory with one name); the
restic interop tests are in test_kbrowse_cli.py.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from mover.progress import Counters
from mover.golang import gojson
from mover.repo.backend import FileType
from mover.repo.backend.local import LocalBackend
from mover.repo.blob import BlobType
from mover.errors import RepoError
from mover.repo.repository import Repository
from mover.view.snapshot import Snapshot
from mover.view.node import GO_DIR, GO_SYMLINK, Node
from mover.repo.view import RepositoryView
from mover.restorer import restore

PASSWORD = "restorer-test"
T0 = 1_600_000_000_123_456_789
BLOB = 256 * 1024  # small blobs, so files span several


class Link(str):
    """A symlink's target in a tree spec."""


def _nodes(repo: Repository, spec: list[tuple[str, object]]) -> list[Node]:
    nodes = []
    for i, (name, v) in enumerate(spec):
        t = T0 + i * 1_000_000_007
        if isinstance(v, list):
            nodes.append(Node(name, "dir", mode=GO_DIR | 0o755, mtime=t, atime=t,
                              subtree=save_tree(repo, v)))
        elif isinstance(v, Link):
            nodes.append(Node(name, "symlink", mode=GO_SYMLINK | 0o777, mtime=t, atime=t,
                              linktarget=str(v)))
        else:
            assert isinstance(v, bytes)
            ids = [repo.save_blob(BlobType.DATA, v[o:o + BLOB])[0] for o in range(0, len(v), BLOB)]
            nodes.append(Node(name, "file", mode=0o640, mtime=t, atime=t, size=len(v), content=ids))
    return nodes


def save_tree(repo: Repository, spec: list[tuple[str, object]]) -> bytes:
    """Store a tree exactly as given: no sorting, no duplicate check (attacks need both)."""
    raw = (gojson.dumps({"nodes": [n.to_json() for n in _nodes(repo, spec)]}) + "\n").encode()
    return repo.save_blob(BlobType.TREE, raw)[0]


def make_snapshot(repo: Repository, spec: list[tuple[str, object]]) -> Snapshot:
    snap = Snapshot(time=T0, tree=save_tree(repo, spec), paths=["/src"], hostname="test")
    repo.flush()
    repo.save_snapshot(snap)
    return snap


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    r = Repository.init(LocalBackend(str(tmp_path / "repo")), PASSWORD)
    yield r
    r.close()


def root_node(repo: Repository, snap: Snapshot) -> Node:
    return RepositoryView(repo).root(snap)


def node_at(repo: Repository, snap: Snapshot, path: str) -> Node:
    return RepositoryView(repo).lookup(snap, path)


def test_restores_dirs_files_symlinks_with_metadata(repo: Repository, tmp_path: Path) -> None:
    big = os.urandom(3 * BLOB + 1000)
    snap = make_snapshot(repo, [("a.txt", b"hello\n"), ("big", big), ("empty", b""),
                                ("d", [("inner", b"x" * 10), ("e", [])]), ("ln", Link("a.txt"))])
    dest = tmp_path / "out"
    counters = Counters()
    res = restore(repo, root_node(repo, snap), str(dest), counters)
    assert res.ok, res.errors
    assert (dest / "a.txt").read_bytes() == b"hello\n"
    assert (dest / "big").read_bytes() == big
    assert (dest / "empty").read_bytes() == b""
    assert (dest / "d" / "inner").read_bytes() == b"x" * 10
    assert (dest / "d" / "e").is_dir()
    assert os.readlink(dest / "ln") == "a.txt"
    assert stat.S_IMODE(os.lstat(dest / "big").st_mode) == 0o640
    assert os.lstat(dest / "a.txt").st_mtime_ns == T0
    assert os.lstat(dest / "ln").st_mtime_ns == T0 + 4 * 1_000_000_007
    assert os.lstat(dest / "d").st_mtime_ns == T0 + 3 * 1_000_000_007  # set after its children
    assert (res.files, res.dirs, res.bytes) == (5, 2, 6 + len(big) + 10)
    assert (counters.total_files, counters.files) == (5, 5)
    assert counters.total_bytes == counters.bytes == res.bytes and not counters.scanning


def test_single_file_into_dir_or_new_path_and_subdir(repo: Repository, tmp_path: Path) -> None:
    snap = make_snapshot(repo, [("d", [("f.bin", b"data!"), ("g", [("h", b"hh")])])])
    into = tmp_path / "existing"
    into.mkdir()
    assert restore(repo, node_at(repo, snap, "/d/f.bin"), str(into)).ok
    assert (into / "f.bin").read_bytes() == b"data!"

    new = tmp_path / "new" / "parents" / "renamed.bin"
    assert restore(repo, node_at(repo, snap, "/d/f.bin"), str(new)).ok
    assert new.read_bytes() == b"data!" and os.stat(new).st_mtime_ns == T0

    sub = tmp_path / "sub"
    res = restore(repo, node_at(repo, snap, "/d"), str(sub))
    assert res.ok and (res.files, res.dirs) == (2, 1)
    assert (sub / "g" / "h").read_bytes() == b"hh"
    assert os.stat(sub).st_mtime_ns == T0  # the directory's own metadata goes to dest


def test_existing_files_are_replaced_not_written_through(repo: Repository, tmp_path: Path) -> None:
    snap = make_snapshot(repo, [("f", b"new content"), ("h", b"restored"), ("x", b"short")])
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "f").write_bytes(b"old content that is longer")
    (outside / "h").write_bytes(b"must stay")
    os.link(outside / "h", dest / "h")  # a hard link to a file outside dest
    (dest / "x").mkdir()  # a directory where a file must go is kept, and reported
    res = restore(repo, root_node(repo, snap), str(dest))
    assert (dest / "f").read_bytes() == b"new content"
    assert (dest / "h").read_bytes() == b"restored"
    assert (outside / "h").read_bytes() == b"must stay"
    assert (dest / "x").is_dir()
    assert len(res.errors) == 1 and "x: cannot create: a directory is in the way" in res.errors[0]


def test_malicious_names_never_escape_dest(repo: Repository, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    snap = make_snapshot(repo, [
        ("..", b"parent"), (".", [("f", b"dot")]), ("", b"empty name"), ("a/b", b"slash"),
        ("../../escape", b"up"), ("nul\0byte", b"nul"),
        # a symlink, then a directory and a file of the same name: must not be written through
        ("link", Link(str(outside))), ("link", [("pwned", b"through the link")]),
        ("flink", Link(str(outside / "file"))), ("flink", b"through the file link"),
        ("ok", [("deep", [("ok.txt", b"fine")])]),
    ])
    dest = tmp_path / "a" / "dest"
    res = restore(repo, root_node(repo, snap), str(dest))

    assert list(outside.iterdir()) == []
    assert sorted(os.listdir(tmp_path)) == ["a", "outside", "repo"]
    assert os.listdir(tmp_path / "a") == ["dest"]
    assert sorted(os.listdir(dest)) == ["flink", "link", "ok"]
    assert os.readlink(dest / "link") == str(outside)
    assert (dest / "ok" / "deep" / "ok.txt").read_bytes() == b"fine"
    text = "\n".join(res.errors)
    for shown in ('unsafe name ".."', 'unsafe name "."', 'unsafe name ""', 'unsafe name "a/b"',
                  'unsafe name "nul\\x00byte"', '"link" appears twice', '"flink" appears twice'):
        assert shown in text
    assert len(res.errors) == 8 and not res.ok


def test_existing_symlinks_in_dest_are_replaced(repo: Repository, tmp_path: Path) -> None:
    snap = make_snapshot(repo, [("d", [("x", b"inside")]), ("f", b"file"), ("s", Link("t"))])
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (outside / "f").write_bytes(b"keep")
    os.symlink(outside, dest / "d")
    os.symlink(outside / "f", dest / "f")
    os.symlink(outside, dest / "s")
    res = restore(repo, root_node(repo, snap), str(dest))
    assert res.ok, res.errors
    assert sorted(os.listdir(outside)) == ["f"] and (outside / "f").read_bytes() == b"keep"
    assert not (dest / "d").is_symlink() and (dest / "d" / "x").read_bytes() == b"inside"
    assert not (dest / "f").is_symlink() and (dest / "f").read_bytes() == b"file"
    assert os.readlink(dest / "s") == "t"


def _pack_path(repo: Repository, pack: bytes) -> str:
    return os.path.join(repo.backend.path, "data", pack.hex()[:2], pack.hex())


def _flip(path: str, offset: int) -> None:
    os.chmod(path, 0o600)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x40]))


def test_damaged_blob_is_reported_and_its_file_removed(repo: Repository, tmp_path: Path) -> None:
    big = os.urandom(3 * BLOB)
    snap = make_snapshot(repo, [("big", big), ("good", b"intact"), ("twin", big[:BLOB])])
    content = node_at(repo, snap, "/big").content
    bad = repo.lookup(BlobType.DATA, content[1])
    _flip(_pack_path(repo, bad.pack), bad.offset + bad.length // 2)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "big").write_bytes(b"stale copy")  # must not survive either
    res = restore(repo, root_node(repo, snap), str(dest))
    assert not res.ok and len(res.errors) == 1
    msg = res.errors[0]
    assert str(dest / "big") in msg and bad.id.hex()[:16] in msg and bad.pack.hex()[:16] in msg
    assert "MAC" in msg and "not restored" in msg
    assert sorted(os.listdir(dest)) == ["good", "twin"]
    assert (dest / "good").read_bytes() == b"intact" and (dest / "twin").read_bytes() == big[:BLOB]


def test_missing_pack_and_missing_blob(repo: Repository, tmp_path: Path) -> None:
    snap = make_snapshot(repo, [("f", b"content")])
    pb = repo.lookup(BlobType.DATA, node_at(repo, snap, "/f").content[0])
    os.unlink(_pack_path(repo, pb.pack))
    res = restore(repo, root_node(repo, snap), str(tmp_path / "d1"))
    assert len(res.errors) == 1
    assert f"pack {pb.pack.hex()} holding data blob {pb.id.hex()[:16]} is missing" in res.errors[0]
    assert os.listdir(tmp_path / "d1") == []

    ghost = Node("ghost", "file", mode=0o644, size=5, content=[b"\x01" * 32])
    raw = (gojson.dumps({"nodes": [ghost.to_json()]}) + "\n").encode()
    snap2 = Snapshot(time=T0, tree=repo.save_blob(BlobType.TREE, raw)[0], paths=["/x"])
    repo.flush()
    res = restore(repo, root_node(repo, snap2), str(tmp_path / "d2"))
    assert len(res.errors) == 1 and "ghost" in res.errors[0] and "01010101" in res.errors[0]
    assert os.listdir(tmp_path / "d2") == []


def test_each_pack_read_once_and_each_blob_decoded_once(repo: Repository, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    chunk = os.urandom(BLOB)
    twice = chunk + chunk  # one blob used twice in one file
    snap = make_snapshot(repo, [("a", twice), ("b", twice), ("c", os.urandom(100))])
    loads, decodes = [], []
    load, decode = repo.backend.load, repo.decode_blob
    monkeypatch.setattr(repo.backend, "load", lambda h, *a: loads.append(h) or load(h, *a))
    monkeypatch.setattr(repo, "decode_blob", lambda pb, s: decodes.append((pb.type, pb.id)) or decode(pb, s))
    res = restore(repo, root_node(repo, snap), str(tmp_path / "out"))
    assert res.ok
    data_pack = repo.lookup(BlobType.DATA, node_at(repo, snap, "/c").content[0]).pack.hex()
    assert [h.name for h in loads if h.type is FileType.PACK].count(data_pack) == 1
    data = [i for t, i in decodes if t is BlobType.DATA]
    assert sorted(data) == sorted({*node_at(repo, snap, "/a").content, *node_at(repo, snap, "/c").content})
    assert (tmp_path / "out" / "b").read_bytes() == twice


def test_sparse_file_keeps_holes(repo: Repository, tmp_path: Path) -> None:
    data = b"head" + bytes(40 * BLOB) + b"tail"
    snap = make_snapshot(repo, [("sparse", data)])
    res = restore(repo, root_node(repo, snap), str(tmp_path / "out"))
    assert res.ok
    path = tmp_path / "out" / "sparse"
    assert path.read_bytes() == data
    assert os.stat(path).st_blocks * 512 <= 2 * BLOB + 8192  # only the two edge blobs


def test_hard_links_and_special_files(repo: Repository, tmp_path: Path) -> None:
    t = T0
    leaf = [Node("a", "file", mode=0o600, mtime=t, atime=t, size=3, links=2, inode=77, device_id=5,
                 content=[repo.save_blob(BlobType.DATA, b"abc")[0]]),
            Node("fifo", "fifo", mode=(1 << 25) | 0o640, mtime=t, atime=t),
            Node("null", "chardev", mode=(1 << 26) | (1 << 21) | 0o666, mtime=t, atime=t,
                 device=os.makedev(1, 3), links=1),
            Node("sock", "socket", mode=(1 << 24) | 0o755, mtime=t, atime=t)]
    other = [Node("b", "file", mode=0o600, mtime=t, atime=t, size=3, links=2, inode=77, device_id=5,
                  content=leaf[0].content)]
    sub = repo.save_tree(other)
    tree = repo.save_tree([*leaf, Node("sub", "dir", mode=GO_DIR | 0o700, mtime=t, subtree=sub)])
    repo.flush()
    snap = Snapshot(time=t, tree=tree, paths=["/x"])
    dest = tmp_path / "out"
    res = restore(repo, root_node(repo, snap), str(dest))
    assert res.ok, res.errors
    assert os.stat(dest / "a").st_ino == os.stat(dest / "sub" / "b").st_ino
    assert os.stat(dest / "a").st_nlink == 2
    assert stat.S_ISFIFO(os.lstat(dest / "fifo").st_mode)
    assert stat.S_IMODE(os.lstat(dest / "fifo").st_mode) == 0o640
    assert os.lstat(dest / "fifo").st_mtime_ns == t
    assert not (dest / "sock").exists() and any("socket not restored" in w for w in res.warnings)
    if not any("mknod" in w for w in res.warnings):
        st = os.lstat(dest / "null")
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)


def test_cancel_stops_the_restore(repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snap = make_snapshot(repo, [(f"f{i}", os.urandom(BLOB)) for i in range(8)])
    cancel = threading.Event()
    load = repo.backend.load
    monkeypatch.setattr(repo.backend, "load", lambda h, *a: cancel.set() or load(h, *a))
    res = restore(repo, root_node(repo, snap), str(tmp_path / "out"), cancel=cancel, workers=1)
    assert res.cancelled and not res.ok and res.files < 8


def test_unusable_dest_is_one_error(repo: Repository, tmp_path: Path) -> None:
    snap = make_snapshot(repo, [("f", b"x")])
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(RepoError, match="cannot create"):
        restore(repo, root_node(repo, snap), str(blocker / "sub"))


def test_hard_links_to_a_damaged_file_are_removed_too(repo: Repository, tmp_path: Path) -> None:
    blob = repo.save_blob(BlobType.DATA, os.urandom(1000))[0]
    node = dict(type="file", mode=0o644, size=1000, links=2, inode=9, device_id=1, content=[blob])
    tree = repo.save_tree([Node("first", **node), Node("second", **node)])
    repo.flush()
    pb = repo.lookup(BlobType.DATA, blob)
    _flip(_pack_path(repo, pb.pack), pb.offset + 500)
    res = restore(repo, root_node(repo, Snapshot(time=T0, tree=tree, paths=["/x"])), str(tmp_path / "out"))
    assert os.listdir(tmp_path / "out") == []
    assert len(res.errors) == 2 and "second: not restored, a hard link to" in res.errors[1]
    assert res.files == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="owners and a foreign setgid group need root")
def test_owner_and_mode_exact_whatever_the_umask_and_a_setgid_dest(repo: Repository, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A new file is created with its mode and left unchowned only when that already gives
    the recorded owner, group and mode: not under a umask that strips bits, not in a setgid
    directory (whose group new entries take), not for another owner."""
    t = T0
    content = [repo.save_blob(BlobType.DATA, b"abc")[0]]

    def f(name: str, mode: int, uid: int = 0, gid: int = 0) -> Node:
        return Node(name, "file", mode=mode, mtime=t, atime=t, size=3, uid=uid, gid=gid, content=content)

    sub = repo.save_tree([f("inner", 0o664)])
    tree = repo.save_tree([f("mine", 0o664), f("theirs", 0o640, 4321, 4322),
                           Node("d", "dir", mode=GO_DIR | 0o755, mtime=t, subtree=sub)])
    repo.flush()
    snap = Snapshot(time=t, tree=tree, paths=["/x"])
    dest = tmp_path / "out"
    dest.mkdir()
    os.chown(dest, 0, 4242)
    os.chmod(dest, 0o2755)  # new entries would get group 4242
    old = os.umask(0o027)  # and lose group write and all of other's bits
    try:
        res = restore(repo, root_node(repo, snap), str(dest))
    finally:
        os.umask(old)
    assert res.ok, res.errors

    def meta(p: Path) -> tuple[int, int, int]:
        st = os.lstat(p)
        return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid

    assert meta(dest / "mine") == (0o664, 0, 0)
    assert meta(dest / "theirs") == (0o640, 4321, 4322)
    assert meta(dest / "d" / "inner") == (0o664, 0, 0)

    plain = tmp_path / "plain"
    calls: list[str] = []
    for name in ("chown", "chmod"):
        monkeypatch.setattr(os, name, lambda *a, _f=getattr(os, name), _n=name, **k: calls.append(_n) or _f(*a, **k))
    old = os.umask(0o002)
    try:
        res = restore(repo, root_node(repo, snap), str(plain))
    finally:
        os.umask(old)
    assert res.ok, res.errors
    assert meta(plain / "mine") == meta(plain / "d" / "inner") == (0o664, 0, 0)
    assert meta(plain / "theirs") == (0o640, 4321, 4322)
    assert sorted(calls) == ["chmod", "chmod", "chown", "chown"]  # "theirs" and "d" only
