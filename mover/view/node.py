"""A node of a snapshot's tree: one file, directory, link or device, in any format.

The fields are restic's (the richer of the two formats); kopia's reader fills the ones it has.
``mode`` is a Go ``os.FileMode``, as both restic and kopia record it. ``content`` and
``subtree`` are opaque handles: only the view that made a node reads them. ``to_json`` is
restic's JSON form; :class:`StoredNode` is its schema, which ``from_stored`` reads (trees are
decoded by :func:`mover.repo.tree.decode_tree`).

Names and link targets are ``str`` with surrogateescape for bytes that are not UTF-8, so they go
straight to ``os`` functions. Times are integer nanoseconds since the epoch.
"""

from __future__ import annotations

import base64
import stat as st
from dataclasses import dataclass, field

import msgspec

from mover.golang import gojson, gotime

# Go os.FileMode bits
GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27
GO_DEVICE = 1 << 26
GO_NAMED_PIPE = 1 << 25
GO_SOCKET = 1 << 24
GO_SETUID = 1 << 23
GO_SETGID = 1 << 22
GO_CHARDEV = 1 << 21
GO_STICKY = 1 << 20
GO_IRREGULAR = 1 << 19
GO_PERM = 0o777

NODE_TYPES = ("file", "dir", "symlink", "dev", "chardev", "fifo", "socket", "irregular")
# the POSIX file type of each node type ("irregular" has none)
NODE_IFMT = {"file": st.S_IFREG, "dir": st.S_IFDIR, "symlink": st.S_IFLNK, "dev": st.S_IFBLK,
             "chardev": st.S_IFCHR, "fifo": st.S_IFIFO, "socket": st.S_IFSOCK}
_GO_TYPE_BITS = {st.S_IFDIR: GO_DIR, st.S_IFLNK: GO_SYMLINK, st.S_IFBLK: GO_DEVICE,
                 st.S_IFCHR: GO_DEVICE | GO_CHARDEV, st.S_IFIFO: GO_NAMED_PIPE,
                 st.S_IFSOCK: GO_SOCKET}


def go_mode_from_posix(mode: int) -> int:
    """POSIX st_mode -> Go os.FileMode as restic stores it."""
    m = mode & GO_PERM
    if mode & st.S_ISUID:
        m |= GO_SETUID
    if mode & st.S_ISGID:
        m |= GO_SETGID
    if mode & st.S_ISVTX:
        m |= GO_STICKY
    return m | _GO_TYPE_BITS.get(st.S_IFMT(mode), 0)


def posix_perm_from_go(mode: int) -> int:
    """Permission and special bits (no file type) of a Go FileMode, for chmod."""
    m = mode & GO_PERM
    if mode & GO_SETUID:
        m |= st.S_ISUID
    if mode & GO_SETGID:
        m |= st.S_ISGID
    if mode & GO_STICKY:
        m |= st.S_ISVTX
    return m


@dataclass(slots=True)
class Node:
    name: str
    type: str
    mode: int = 0
    mtime: int = gotime.ZERO
    atime: int = gotime.ZERO
    ctime: int = gotime.ZERO
    uid: int = 0
    gid: int = 0
    user: str = ""
    group: str = ""
    inode: int = 0
    device_id: int = 0
    size: int = 0
    links: int = 0
    linktarget: str = ""
    xattrs: list[tuple[str, bytes]] = field(default_factory=list)
    device: int = 0
    content: list[bytes] | None = None
    subtree: bytes | None = None
    error: str = ""

    @property
    def name_bytes(self) -> bytes:
        return self.name.encode("utf-8", "surrogateescape")

    def to_json(self) -> dict:
        d: dict = {"name": gojson.go_quote(self.name), "type": self.type}
        if self.mode:
            d["mode"] = self.mode
        # atime is mtime unless a backup asks for atimes, and ctime often is: format once
        mtime = d["mtime"] = gotime.format_ns(self.mtime)
        d["atime"] = mtime if self.atime == self.mtime else gotime.format_ns(self.atime)
        d["ctime"] = mtime if self.ctime == self.mtime else gotime.format_ns(self.ctime)
        d["uid"] = self.uid
        d["gid"] = self.gid
        for key, val in (("user", self.user), ("group", self.group), ("inode", self.inode),
                         ("device_id", self.device_id), ("size", self.size), ("links", self.links)):
            if val:
                d[key] = val
        if self.linktarget:
            raw = self.linktarget.encode("utf-8", "surrogateescape")
            try:
                d["linktarget"] = raw.decode("utf-8")
            except UnicodeDecodeError:
                # restic 0.14 can only hold UTF-8 here; 0.16+ reads the exact bytes from _raw
                d["linktarget"] = raw.decode("utf-8", "replace")
                d["linktarget_raw"] = base64.b64encode(raw).decode()
        if self.xattrs:
            d["extended_attributes"] = [{"name": n, "value": base64.b64encode(v).decode()}
                                        for n, v in self.xattrs]
        if self.device:
            d["device"] = self.device
        d["content"] = None if self.content is None else [c.hex() for c in self.content]
        if self.subtree is not None:
            d["subtree"] = self.subtree.hex()
        if self.error:
            d["error"] = self.error
        return d

    @classmethod
    def from_stored(cls, j: StoredNode) -> Node:
        # Decoding trees is most of what `ls -R`, a no-change backup and opening a big folder do
        # in Python: positional arguments, and a time equal to mtime (atime always, as restic
        # and mover record it, and often ctime) is parsed once.
        name = j.name
        if "\\" in name:
            name = gojson.go_unquote(name)
        mt = j.mtime
        mtime = _time(mt)
        at = j.atime
        ct = j.ctime
        target = j.linktarget
        if j.linktarget_raw:
            target = base64.b64decode(j.linktarget_raw).decode("utf-8", "surrogateescape")
        xattrs = j.extended_attributes
        content = j.content
        subtree = j.subtree
        return cls(
            name, j.type, j.mode, mtime,
            mtime if at == mt else _time(at), mtime if ct == mt else _time(ct),
            j.uid, j.gid, j.user, j.group, j.inode, j.device_id, j.size, j.links, target,
            [(x.name, base64.b64decode(x.value)) for x in xattrs] if xattrs else [],
            j.device,
            None if content is None else [bytes.fromhex(c) for c in content],
            bytes.fromhex(subtree) if subtree else None,
            j.error,
        )


class StoredXattr(msgspec.Struct, gc=False):
    name: str
    value: str = ""


class StoredNode(msgspec.Struct, gc=False):
    """A node as restic's JSON spells it: the schema a tree is decoded with, in C, with no
    dict per node (unknown keys are skipped, as restic does). Go writes no null for a number
    or a string, only for a slice or a pointer."""

    name: str
    type: str
    mode: int = 0
    mtime: str = ""
    atime: str = ""
    ctime: str = ""
    uid: int = 0
    gid: int = 0
    user: str = ""
    group: str = ""
    inode: int = 0
    device_id: int = 0
    size: int = 0
    links: int = 0
    linktarget: str = ""
    linktarget_raw: str = ""
    extended_attributes: list[StoredXattr] | None = None
    device: int = 0
    content: list[str] | None = None
    subtree: str | None = None
    error: str = ""


def _time(s: str | None) -> int:
    return gotime.parse_ns(s) if s else gotime.ZERO
