"""The kernel FUSE protocol of `kbrowse mount`, request by request, without mounting: the
session answers on a pipe and each answer is decoded as the kernel would. What a real mount
shows is tested in test_mount.py; this pins the protocol rules a mount cannot make visible
(lookup counting, negative entries, paging, what READDIRPLUS carries)."""

from __future__ import annotations

import errno
import os
import stat
import struct
from collections.abc import Iterator

import pytest

from kbrowse.fuse import kernel as fk
from kbrowse.fuse.fs import CACHE_SECONDS, SnapshotFS
from kbrowse.fuse.tree import SnapEntry, TextFile, VLink, vdir
from mover.view.snapshot import Snapshot
from mover.view.node import Node

NOW = 1_700_000_000_123_456_789


class Wire:
    """A session writing into a pipe; ``ask`` sends one request and returns (error, payload)."""

    def __init__(self, fs: SnapshotFS) -> None:
        self.r, w = os.pipe()
        self.session = fk.Session(fs, w, cache_seconds=CACHE_SECONDS, log=self.logged.append)
        self.unique = 0

    logged: list[str] = []

    def ask(self, opcode: int, nodeid: int = fk.ROOT_ID, body: bytes = b"") -> tuple[int, bytes]:
        self.unique += 1
        assert self.session._answer(opcode, self.unique, nodeid, memoryview(body))
        head = os.read(self.r, fk.OUT_HEADER.size)
        size, error, unique = fk.OUT_HEADER.unpack(head)
        assert unique == self.unique
        payload = os.read(self.r, size - fk.OUT_HEADER.size) if size > fk.OUT_HEADER.size else b""
        assert len(payload) == size - fk.OUT_HEADER.size
        return -error, payload

    def tell(self, opcode: int, nodeid: int, body: bytes) -> None:
        """A request that gets no answer (FORGET, BATCH_FORGET, INTERRUPT)."""
        assert self.session._answer(opcode, 0, nodeid, memoryview(body))

    def lookup(self, parent: int, name: bytes) -> tuple[int, tuple]:
        err, out = self.ask(fk.LOOKUP, parent, name + b"\0")
        assert err == 0, os.strerror(err)
        entry = fk.ENTRY_OUT.unpack(out)
        return entry[0], entry


def _readdir(wire: Wire, nodeid: int, opcode: int, size: int) -> Iterator[tuple[str, tuple | None, int, int]]:
    """Every entry of a directory, page by page: (name, entry_out or None, ino, type)."""
    err, out = wire.ask(fk.OPENDIR, nodeid, fk.OPEN_IN.pack(os.O_RDONLY, 0))
    assert err == 0
    fh = fk.OPEN_OUT.unpack(out)[0]
    offset = 0
    while True:
        err, page = wire.ask(opcode, nodeid, struct.pack("<QQIIQII", fh, offset, size, 0, 0, 0, 0))
        assert err == 0 and len(page) <= size
        if not page:
            break
        pos = 0
        while pos < len(page):
            entry = None
            if opcode == fk.READDIRPLUS:
                entry = fk.ENTRY_OUT.unpack_from(page, pos)
                pos += fk.ENTRY_OUT.size
            ino, offset, namelen, typ = fk.DIRENT.unpack_from(page, pos)
            pos += fk.DIRENT.size
            name = page[pos:pos + namelen].decode("latin-1")
            pos += namelen + (-(fk.DIRENT.size + namelen) % 8)
            yield name, entry, ino, typ
    assert wire.ask(fk.RELEASEDIR, nodeid, fk.FH_IN.pack(fh) + bytes(16))[0] == 0


@pytest.fixture
def wire() -> Iterator[Wire]:
    snap = Snapshot(time=NOW, tree=b"\0" * 32, paths=["/"], id=b"\1" * 32)
    node = Node(name="data", type="file", mode=0o640, size=5, mtime=NOW, uid=7, gid=8,
                xattrs=[("user.color", b"blue"), ("security.selinux", b"x")])
    rendered: list[int] = []
    files = {b"f%03d" % i: VLink(b"data", NOW) for i in range(300)}
    root = vdir({
        b"data": SnapEntry(snap, node, b"/data"),
        b"link": VLink(b"data", NOW),
        b"yaml": TextFile(lambda: rendered.append(1) or b"kind: Pod\n", lambda: NOW),
        b"many": vdir(files, NOW),
    }, NOW)
    w = Wire(SnapshotFS(None, root))
    w.rendered = rendered  # type: ignore[attr-defined]
    yield w
    os.close(w.r)
    os.close(w.session.fd)


def test_init_grants_only_what_the_kernel_offers(wire: Wire) -> None:
    offered = fk.DO_READDIRPLUS | fk.ASYNC_READ | (1 << 3)  # + ATOMIC_O_TRUNC, not wanted
    err, out = wire.ask(fk.INIT, body=fk.INIT_IN.pack(7, 31, 131072, offered))
    major, minor, readahead, flags, *_ = fk.INIT_OUT.unpack(out)
    assert (err, major, minor, readahead) == (0, 7, 31, 131072)
    assert flags == fk.DO_READDIRPLUS | fk.ASYNC_READ
    err, _ = wire.ask(fk.INIT, body=fk.INIT_IN.pack(8, 0, 0, 0))
    assert err == errno.EPROTO


def test_lookup_attributes_and_counting(wire: Wire) -> None:
    nid, entry = wire.lookup(fk.ROOT_ID, b"data")
    _, gen, entry_valid, attr_valid, _, _, ino, size, blocks, a_s, m_s, c_s, a_ns, m_ns, c_ns, \
        mode, nlink, uid, gid, *_ = entry
    assert nid > fk.ROOT_ID and entry_valid == attr_valid == CACHE_SECONDS
    assert (size, blocks, mode, uid, gid, nlink) == (5, 1, stat.S_IFREG | 0o640, 7, 8, 1)
    assert (m_s, m_ns) == divmod(NOW, 10**9)
    # the same path keeps its node id while the kernel holds it
    assert wire.lookup(fk.ROOT_ID, b"data")[0] == nid
    err, out = wire.ask(fk.GETATTR, nid, bytes(16))
    assert err == 0 and fk.ATTR_OUT.unpack(out)[3] == ino
    # two lookups, so one FORGET of 1 keeps it and the second drops it
    wire.tell(fk.FORGET, nid, fk.FH_IN.pack(1))
    assert wire.ask(fk.GETATTR, nid, bytes(16))[0] == 0
    wire.tell(fk.BATCH_FORGET, 0, struct.pack("<II", 1, 0) + fk.FORGET_ONE.pack(nid, 1))
    assert wire.ask(fk.GETATTR, nid, bytes(16))[0] == errno.ESTALE
    # a new lookup gets a new id: ids are never reused
    assert wire.lookup(fk.ROOT_ID, b"data")[0] > nid
    # the root is never forgotten
    wire.tell(fk.FORGET, fk.ROOT_ID, fk.FH_IN.pack(5))
    assert wire.ask(fk.GETATTR, fk.ROOT_ID, bytes(16))[0] == 0


def test_missing_name_is_a_cached_negative_entry(wire: Wire) -> None:
    nid, entry = wire.lookup(fk.ROOT_ID, b"nothing")
    assert nid == 0 and entry[2] == fk.NEGATIVE_SECONDS  # entry_valid: missing for a moment


def test_readdirplus_pages_carry_attributes_and_node_ids(wire: Wire) -> None:
    many, _ = wire.lookup(fk.ROOT_ID, b"many")
    plain = list(_readdir(wire, many, fk.READDIR, 4096))
    plus = list(_readdir(wire, many, fk.READDIRPLUS, 4096))
    names = [n for n, *_ in plus]
    assert names == [n for n, *_ in plain] == [".", ".."] + [f"f{i:03d}" for i in range(300)]
    for name, entry, ino, typ in plus:
        assert entry is not None
        if name in (".", ".."):
            assert entry[0] == 0  # no node id, no lookup counted
            continue
        assert entry[0] > fk.ROOT_ID and entry[6] == ino  # attr.ino
        assert entry[15] == stat.S_IFLNK | 0o777 and typ == stat.S_IFLNK >> 12
    # each listed entry counts as a lookup: the id a READDIRPLUS gave is the lookup's
    f123 = next(e for n, e, *_ in plus if n == "f123")
    assert wire.lookup(many, b"f123")[0] == f123[0]


def test_readdirplus_leaves_lazy_entries_unloaded(wire: Wire) -> None:
    got = {name: (entry, typ) for name, entry, _, typ in _readdir(wire, fk.ROOT_ID, fk.READDIRPLUS, 4096)}
    assert set(got) == {".", "..", "data", "link", "yaml", "many"}
    entry, typ = got["yaml"]
    assert entry[0] == 0 and typ == stat.S_IFREG >> 12  # no attributes: the size needs a render
    assert wire.rendered == []  # type: ignore[attr-defined]
    assert got["data"][0][0] > fk.ROOT_ID and got["data"][0][7] == 5
    # a lookup renders it and has its size
    _, entry = wire.lookup(fk.ROOT_ID, b"yaml")
    assert entry[7] == len(b"kind: Pod\n") and wire.rendered == [1]  # type: ignore[attr-defined]


def test_xattrs_follow_the_size_protocol(wire: Wire) -> None:
    nid, _ = wire.lookup(fk.ROOT_ID, b"data")
    err, out = wire.ask(fk.LISTXATTR, nid, fk.XATTR_IN.pack(0, 0))
    assert err == 0 and fk.XATTR_OUT.unpack(out)[0] == len(b"user.color\0")
    assert wire.ask(fk.LISTXATTR, nid, fk.XATTR_IN.pack(64, 0)) == (0, b"user.color\0")
    name = fk.XATTR_IN.pack(64, 0) + b"user.color\0"
    assert wire.ask(fk.GETXATTR, nid, name) == (0, b"blue")
    assert wire.ask(fk.GETXATTR, nid, fk.XATTR_IN.pack(2, 0) + b"user.color\0")[0] == errno.ERANGE
    # only user.*: security.* would be interpreted by this host's kernel
    assert wire.ask(fk.GETXATTR, nid, fk.XATTR_IN.pack(64, 0) + b"security.selinux\0")[0] == errno.ENODATA


def test_reads_writes_and_unknown_requests(wire: Wire) -> None:
    nid, _ = wire.lookup(fk.ROOT_ID, b"yaml")
    err, out = wire.ask(fk.OPEN, nid, fk.OPEN_IN.pack(os.O_RDONLY, 0))
    fh, flags, _ = fk.OPEN_OUT.unpack(out)
    assert err == 0 and flags & fk.FOPEN_KEEP_CACHE
    read = struct.pack("<QQIIQII", fh, 6, 100, 0, 0, 0, 0)
    assert wire.ask(fk.READ, nid, read) == (0, b"Pod\n")
    assert wire.ask(fk.OPEN, nid, fk.OPEN_IN.pack(os.O_WRONLY, 0))[0] == errno.EROFS
    assert wire.ask(9, fk.ROOT_ID, struct.pack("<II", 0o755, 0) + b"new\0")[0] == errno.EROFS  # MKDIR
    assert wire.ask(39, nid)[0] == errno.ENOSYS  # IOCTL
    link, _ = wire.lookup(fk.ROOT_ID, b"link")
    assert wire.ask(fk.READLINK, link) == (0, b"data")
    assert wire.ask(fk.READLINK, nid)[0] == errno.EINVAL
