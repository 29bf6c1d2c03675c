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
import operator
import stat as st
from typing import overload

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


class _Time:
    """A node's time in integer nanoseconds. A node read from a tree keeps the RFC 3339 text
    until the time is first read: a big folder's listing shows a few rows and the no-change
    backup compares two times a file, while parsing all three of every node was most of what
    decoding a tree cost in Python (the tree decoder has checked that the text is a time)."""

    __slots__ = ("slot",)

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = owner.__dict__["_" + name]  # the slot holding the text or the number

    @overload
    def __get__(self, node: None, owner: type) -> _Time: ...
    @overload
    def __get__(self, node: Node, owner: type | None = None) -> int: ...

    def __get__(self, node: Node | None, owner: type | None = None) -> int | _Time:
        if node is None:
            return self
        t = self.slot.__get__(node)
        if t.__class__ is str:
            text, t = t, _parsed.get(t)
            if t is None:
                t = gotime.parse_ns(text) if text else gotime.ZERO
                if len(_parsed) >= 4096:
                    _parsed.clear()
                _parsed[text] = t
            self.slot.__set__(node, t)
        return t

    def __set__(self, node: Node, ns: int) -> None:
        self.slot.__set__(node, ns)


# times parsed lately: a node's atime is mostly its mtime (restic and mover record it so), and
# often its ctime too
_parsed: dict[str, int] = {}


_FIELDS = ("name", "type", "mode", "mtime", "atime", "ctime", "uid", "gid", "user", "group",
           "inode", "device_id", "size", "links", "linktarget", "xattrs", "device", "content",
           "subtree", "error")
_fields = operator.attrgetter(*_FIELDS)


class Node:
    """One entry of a directory. Compared field by field (times as numbers), mutable, so not
    hashable."""

    __slots__ = ("name", "type", "mode", "_mtime", "_atime", "_ctime", "uid", "gid", "user",
                 "group", "inode", "device_id", "size", "links", "linktarget", "xattrs",
                 "device", "content", "subtree", "error")

    mtime = _Time()
    atime = _Time()
    ctime = _Time()
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, name: str, type: str, mode: int = 0, mtime: int = gotime.ZERO,
                 atime: int = gotime.ZERO, ctime: int = gotime.ZERO, uid: int = 0, gid: int = 0,
                 user: str = "", group: str = "", inode: int = 0, device_id: int = 0,
                 size: int = 0, links: int = 0, linktarget: str = "",
                 xattrs: list[tuple[str, bytes]] | None = None, device: int = 0,
                 content: list[bytes] | None = None, subtree: bytes | None = None,
                 error: str = "") -> None:
        self.name = name
        self.type = type
        self.mode = mode
        self._mtime: int | str = mtime
        self._atime: int | str = atime
        self._ctime: int | str = ctime
        self.uid = uid
        self.gid = gid
        self.user = user
        self.group = group
        self.inode = inode
        self.device_id = device_id
        self.size = size
        self.links = links
        self.linktarget = linktarget
        self.xattrs = [] if xattrs is None else xattrs
        self.device = device
        self.content = content
        self.subtree = subtree
        self.error = error

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Node:
            return NotImplemented
        return bool(_fields(self) == _fields(other))

    def __repr__(self) -> str:
        return "Node(" + ", ".join(f"{k}={v!r}" for k, v in zip(_FIELDS, _fields(self), strict=True)) + ")"

    def times_equal(self, mtime: int, ctime: int, atime: int | None = None) -> bool:
        """Whether the node's mtime and ctime (and atime, if given) are these nanoseconds. A
        time still held as text is compared as text (:func:`gotime.equals_ns`) and stays text:
        the no-change backup asks this of every file, and parsing was most of its compare."""
        held = self._mtime
        if not (_time_is(held, mtime) and _time_is(self._ctime, ctime)):
            return False
        if atime is None:
            return True
        held_atime = self._atime
        # atime is mostly mtime (restic and mover record it so): then it is equal too
        return (atime == mtime and held_atime == held) or _time_is(held_atime, atime)

    @property
    def mtime_raw(self) -> int | str:
        """mtime as held: nanoseconds, or the checked RFC 3339 text of a node read from a tree
        whose mtime nobody has read yet (for a formatter that can do without parsing it)."""
        return self._mtime

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
        """The node a tree's entry describes, times still as text (the tree decoder checks
        them). Once per entry of every tree read, so the slots are filled directly, without
        a call of __init__."""
        n = _new(cls)
        name = j.name
        n.name = gojson.go_unquote(name) if "\\" in name else name
        n.type = j.type
        n.mode = j.mode
        n._mtime = j.mtime
        n._atime = j.atime
        n._ctime = j.ctime
        n.uid = j.uid
        n.gid = j.gid
        n.user = j.user
        n.group = j.group
        n.inode = j.inode
        n.device_id = j.device_id
        n.size = j.size
        n.links = j.links
        raw = j.linktarget_raw
        n.linktarget = base64.b64decode(raw).decode("utf-8", "surrogateescape") if raw else j.linktarget
        x = j.extended_attributes
        n.xattrs = [(a.name, base64.b64decode(a.value)) for a in x] if x else []
        n.device = j.device
        content = j.content
        n.content = None if content is None else [bytes.fromhex(c) for c in content] if content else []
        subtree = j.subtree
        n.subtree = bytes.fromhex(subtree) if subtree else None
        n.error = j.error
        return n


_new = object.__new__


def _time_is(held: int | str, ns: int) -> bool:
    if held.__class__ is str:
        return gotime.equals_ns(held, ns) if held else ns == gotime.ZERO
    return held == ns


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
