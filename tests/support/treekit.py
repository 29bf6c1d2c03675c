"""Build, snapshot and compare file trees for backup/restore interop tests.

`make_full_tree` builds a source tree holding every kind of entry restic 0.14
records; `snapshot_tree` captures what a restorer is expected to reproduce;
`compare_trees` / `assert_same_tree` report the differences between two trees.

Paths are handled as bytes throughout, because some names are not UTF-8.
The root directory itself is not part of a snapshot: it is usually the restore
target, which the caller created, so only its contents are compared.
"""

from __future__ import annotations

import hashlib
import os
import random
import stat
from dataclasses import dataclass, fields, replace
from pathlib import Path

# Base of the synthetic mtimes (2020-09-13T12:26:40Z). The sub-second parts are
# odd nanosecond values so that any rounding to µs or s shows up as a diff.
_MTIME_BASE_NS = 1_600_000_000 * 10**9
# atimes lie in the future (2040) on purpose: with `relatime`, reading a file or
# listing a directory resets its atime unless the atime is newer than both mtime
# and ctime, which only a future value guarantees. That keeps the atimes stable
# while restic (0.14 does not use O_NOATIME) and snapshot_tree read the tree.
_ATIME_BASE_NS = 2_220_000_000 * 10**9

OWNER_UID = 1234
OWNER_GID = 5678

_MiB = 1024 * 1024


def _write(path: bytes, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _join(root: bytes, rel: bytes) -> bytes:
    return os.path.join(root, rel)


def make_full_tree(root: Path, seed: int = 1234) -> dict:
    """Create under `root` a tree with every kind of entry restic records.

    Returns a description: `root`, `paths` (role -> relative bytes path, so tests
    can find and mutate specific entries) and flags for the optional features the
    file system allowed (`xattrs`, `chardev`, `blockdev`), with the refusal reason
    in `skipped` when a feature was unavailable.

    Sockets are deliberately absent: restic 0.14's archiver skips them, so they
    never appear in a snapshot.
    """
    rng = random.Random(seed)
    r = os.fsencode(root)
    os.makedirs(r, exist_ok=True)
    paths: dict[str, bytes] = {}
    skipped: dict[str, str] = {}

    def mkdir(role: str, rel: bytes) -> bytes:
        os.makedirs(_join(r, rel), exist_ok=True)
        paths[role] = rel
        return rel

    def file(role: str, rel: bytes, data: bytes) -> bytes:
        _write(_join(r, rel), data)
        paths[role] = rel
        return rel

    # Regular files of several sizes. 12 MiB exceeds the 8 MiB maximum chunk
    # size, so it always spans several chunks whatever the chunker.
    file("empty", b"empty.txt", b"")
    file("tiny", b"tiny.txt", b"hello\n")
    words = [b"alpha", b"beta", b"gamma", b"delta", b"epsilon", b"zeta", b"eta", b"theta"]
    text = bytearray()
    while len(text) < 100 * 1024:
        text += b" ".join(rng.choice(words) for _ in range(12)) + b"\n"
    file("text", b"text-100k.txt", bytes(text))
    file("random_small", b"random-3m.bin", rng.randbytes(3 * _MiB))
    file("random_large", b"random-12m.bin", rng.randbytes(12 * _MiB + 12345))

    # Sparse file: 8 MiB with data only at both ends.
    sparse = _join(r, b"sparse.bin")
    with open(sparse, "wb") as f:
        f.write(b"start" * 100)
        f.seek(8 * _MiB - 500)
        f.write(b"end!!" * 100)
    paths["sparse"] = b"sparse.bin"

    # Nested and empty directories.
    mkdir("nested", b"dir/sub/deeper")
    file("nested_file", b"dir/sub/deeper/leaf.txt", b"leaf\n")
    file("dir_file", b"dir/top.txt", rng.randbytes(777))
    mkdir("empty_dir", b"empty-dir")

    # Symlinks: relative, dangling, absolute. Targets stay UTF-8 because restic
    # 0.14 stores link targets as JSON strings and mangles invalid UTF-8.
    mkdir("links_dir", b"links")
    for role, name, target in [
        ("symlink_rel", b"links/rel", b"../tiny.txt"),
        ("symlink_dangling", b"links/dangling", b"does/not/exist"),
        ("symlink_abs", b"links/abs", b"/etc/hostname"),
    ]:
        os.symlink(target, _join(r, name))
        paths[role] = name

    # Hard links: two names in one directory plus a third elsewhere.
    mkdir("hard_dir", b"hard")
    file("hardlink_a", b"hard/a", rng.randbytes(4096))
    for role, name in [("hardlink_b", b"hard/b"), ("hardlink_c", b"dir/sub/hard-c")]:
        os.link(_join(r, paths["hardlink_a"]), _join(r, name))
        paths[role] = name

    os.mkfifo(_join(r, b"fifo"))
    paths["fifo"] = b"fifo"

    # Device nodes: a container may forbid mknod even for root.
    mkdir("dev_dir", b"dev")
    devices = {
        "chardev": (b"dev/null-like", stat.S_IFCHR, os.makedev(1, 3)),
        "blockdev": (b"dev/loop-like", stat.S_IFBLK, os.makedev(7, 0)),
    }
    available: dict[str, bool] = {}
    for role, (name, kind, dev) in devices.items():
        try:
            os.mknod(_join(r, name), kind | 0o644, dev)
        except OSError as e:
            available[role] = False
            skipped[role] = f"mknod refused: {e}"
        else:
            available[role] = True
            paths[role] = name

    # Unusual modes; chmod runs after every chown below, since chown clears setuid/setgid.
    mkdir("modes_dir", b"modes")
    modes = {
        file("mode_0600", b"modes/private", b"secret\n"): 0o600,
        file("mode_0755", b"modes/exec", b"#!/bin/sh\necho hi\n"): 0o755,
        file("mode_0444", b"modes/readonly", b"read only\n"): 0o444,
        file("mode_4755", b"modes/setuid", b"setuid\n"): 0o4755,
        mkdir("mode_setgid_dir", b"modes/setgid-dir"): 0o2755,
        mkdir("mode_sticky_dir", b"modes/sticky-dir"): 0o1777,
    }
    file("in_setgid", b"modes/setgid-dir/inside.txt", b"inside setgid\n")
    file("in_sticky", b"modes/sticky-dir/inside.txt", b"inside sticky\n")

    # Names that stress encoding: invalid UTF-8, newline, quotes, backslash, unicode.
    mkdir("names_dir", b"names")
    file("name_latin1", b"names/latin1-\xe9.txt", b"latin1 name\n")
    file("name_newline", b"names/new\nline", b"newline name\n")
    file("name_unicode", "names/ünïcödé ☃.txt".encode(), b"unicode name\n")
    file("name_quotes", b'names/quote"and\\back', b"quote and backslash\n")
    file("name_spaces", b"names/with  spaces and 'single' quotes", b"spaces\n")
    mkdir("name_bad_dir", b"names/dir-\xff\xfe")
    file("name_in_bad_dir", b"names/dir-\xff\xfe/x", b"in a non-UTF-8 dir\n")

    # Extended attributes, including a binary value, on a file and a directory.
    file("xattr_file", b"xattr-file.txt", b"has xattrs\n")
    mkdir("xattr_dir", b"xattr-dir")
    xattrs_ok = True
    try:
        os.setxattr(_join(r, paths["xattr_file"]), b"user.comment", b"hello xattr")
        os.setxattr(_join(r, paths["xattr_file"]), b"user.binary", bytes(range(256)))
        os.setxattr(_join(r, paths["xattr_dir"]), b"user.dir", b"on a directory")
    except OSError as e:
        xattrs_ok = False
        skipped["xattrs"] = f"setxattr refused: {e}"

    # Entries owned by another user: a file, a directory and a symlink (lchown).
    mkdir("owned_dir", b"owned")
    file("owned_file", b"owned/file.txt", b"owned by 1234\n")
    os.symlink(b"file.txt", _join(r, b"owned/link"))
    paths["owned_link"] = b"owned/link"
    for role in ("owned_dir", "owned_file", "owned_link"):
        os.lchown(_join(r, paths[role]), OWNER_UID, OWNER_GID)

    for rel, mode in modes.items():
        os.chmod(_join(r, rel), mode)

    _set_times(r)
    return {
        "root": Path(root),
        "paths": paths,
        "xattrs": xattrs_ok,
        "chardev": available["chardev"],
        "blockdev": available["blockdev"],
        "skipped": skipped,
    }


def _set_times(root: bytes) -> None:
    """Give every entry a distinct ns-precise mtime and atime, children first.

    Directories come after their children because creating a child changes the
    parent's mtime; setting times does not. Entries are ordered by (depth, path),
    not readdir order, so two trees built alike get identical times.
    """
    rels: list[bytes] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rels.extend(os.path.normpath(os.path.join(rel_dir, n)) for n in dirnames + filenames)
    rels.sort(key=lambda rel: (-rel.count(b"/"), rel))
    rels.append(b".")
    for i, rel in enumerate(rels):
        frac = (123_456_789 + i * 7_919) % 10**9
        mtime = _MTIME_BASE_NS + i * 3_601 * 10**9 + frac
        atime = _ATIME_BASE_NS + i * 61 * 10**9 + (frac * 3) % 10**9
        os.utime(_join(root, rel), ns=(atime, mtime), follow_symlinks=False)


@dataclass(frozen=True)
class Entry:
    """What a restorer must reproduce for one tree entry.

    `mode` is stat.S_IMODE (permissions plus setuid/setgid/sticky). `size` and
    `sha256` are for regular files only; directory sizes depend on the file
    system. `link_group` is the sorted tuple of every path in the tree that
    shares this entry's inode, or None: comparing it compares the grouping of
    hard links, never inode numbers. Sparseness is not recorded.
    """

    type: str
    mode: int
    uid: int
    gid: int
    size: int | None
    mtime_ns: int
    atime_ns: int
    sha256: str | None
    link_target: bytes | None
    xattrs: tuple[tuple[str, bytes], ...]
    link_group: tuple[bytes, ...] | None
    rdev: int | None


_TYPES = {
    stat.S_IFREG: "file",
    stat.S_IFDIR: "dir",
    stat.S_IFLNK: "symlink",
    stat.S_IFIFO: "fifo",
    stat.S_IFCHR: "chardev",
    stat.S_IFBLK: "blockdev",
    stat.S_IFSOCK: "socket",
}


def _sha256(path: bytes) -> str:
    # O_NOATIME: hashing must not disturb the atimes being compared.
    fd = os.open(path, os.O_RDONLY | os.O_NOATIME)
    h = hashlib.sha256()
    with os.fdopen(fd, "rb") as f:
        while chunk := f.read(_MiB):
            h.update(chunk)
    return h.hexdigest()


def _user_xattrs(path: bytes) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        # File systems without xattr support have none to compare.
        return ()
    return tuple(
        sorted(
            (n, os.getxattr(path, n, follow_symlinks=False))
            for n in names
            if n.startswith("user.")
        )
    )


def _list_dir(path: bytes) -> list[bytes]:
    # Listing through an O_NOATIME descriptor leaves the directory's atime alone,
    # so taking a snapshot never changes what the next snapshot sees.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOATIME)
    try:
        return sorted(os.fsencode(name) for name in os.listdir(fd))
    finally:
        os.close(fd)


def snapshot_tree(root: Path) -> dict[bytes, Entry]:
    """Record every entry under `root` (not root itself), keyed by relative bytes path.

    Symlinks are never followed. Each entry is lstat'ed before it is read, and
    files and directories are read with O_NOATIME, but readlink has no such flag:
    under `relatime` it resets a symlink's atime when that atime is not newer
    than its mtime and ctime. Atimes of symlinks are therefore only reliable in
    the first snapshot of a tree, or when they lie in the future as in
    make_full_tree's trees.
    """
    r = os.fsencode(root)
    raw: dict[bytes, tuple[os.stat_result, Entry]] = {}

    def visit(rel: bytes) -> None:
        path = _join(r, rel)
        st = os.lstat(path)
        kind = _TYPES[stat.S_IFMT(st.st_mode)]
        raw[rel] = (
            st,
            Entry(
                type=kind,
                mode=stat.S_IMODE(st.st_mode),
                uid=st.st_uid,
                gid=st.st_gid,
                size=st.st_size if kind == "file" else None,
                mtime_ns=st.st_mtime_ns,
                atime_ns=st.st_atime_ns,
                sha256=_sha256(path) if kind == "file" else None,
                link_target=os.readlink(path) if kind == "symlink" else None,
                xattrs=_user_xattrs(path),
                link_group=None,
                rdev=st.st_rdev if kind in ("chardev", "blockdev") else None,
            ),
        )
        if kind == "dir":
            for name in _list_dir(path):
                visit(os.path.join(rel, name))

    for name in _list_dir(r):
        visit(name)

    by_inode: dict[tuple[int, int], list[bytes]] = {}
    for rel, (st, entry) in raw.items():
        if entry.type != "dir":
            by_inode.setdefault((st.st_dev, st.st_ino), []).append(rel)
    groups = {
        rel: tuple(sorted(members))
        for members in by_inode.values()
        if len(members) > 1
        for rel in members
    }
    return {rel: replace(entry, link_group=groups.get(rel)) for rel, (_, entry) in raw.items()}


def _show_path(rel: bytes) -> str:
    # repr() makes newlines and undecodable bytes visible in messages.
    return repr(rel.decode("utf-8", "backslashreplace"))


def _show(field: str, value: object) -> str:
    if field == "mode" and isinstance(value, int):
        return oct(value)
    if field == "rdev" and isinstance(value, int):
        return f"{os.major(value)}:{os.minor(value)}"
    if field == "link_group" and isinstance(value, tuple):
        return "[" + ", ".join(_show_path(p) for p in value) + "]"
    return repr(value)


def compare_trees(
    a: Path,
    b: Path,
    *,
    check_atime: bool = False,
    check_owner: bool = True,
    check_dir_mtime: bool = True,
) -> list[str]:
    """Return human-readable differences between trees `a` and `b` ([] = equal).

    Everything in `Entry` is compared, mtimes at ns precision. The defaults are
    what a restic 0.14 restore satisfies (see test_treekit.py): atimes are off
    only because restic stores atime = mtime unless backed up with --with-atime.
    """
    sa, sb = snapshot_tree(a), snapshot_tree(b)
    diffs: list[str] = []
    for rel in sorted(sa.keys() - sb.keys()):
        diffs.append(f"{_show_path(rel)}: only in a ({sa[rel].type})")
    for rel in sorted(sb.keys() - sa.keys()):
        diffs.append(f"{_show_path(rel)}: only in b ({sb[rel].type})")

    skip = {"atime_ns"} if not check_atime else set()
    if not check_owner:
        skip |= {"uid", "gid"}

    for rel in sorted(sa.keys() & sb.keys()):
        ea, eb = sa[rel], sb[rel]
        if ea.type != eb.type:
            diffs.append(f"{_show_path(rel)}: type {ea.type} != {eb.type}")
            continue
        entry_skip = skip | ({"mtime_ns"} if ea.type == "dir" and not check_dir_mtime else set())
        for f in fields(Entry):
            if f.name in entry_skip:
                continue
            va, vb = getattr(ea, f.name), getattr(eb, f.name)
            if va != vb:
                diffs.append(
                    f"{_show_path(rel)}: {f.name} {_show(f.name, va)} != {_show(f.name, vb)}"
                )
    return diffs


def assert_same_tree(a: Path, b: Path, **kw: bool) -> None:
    """Assert that `compare_trees(a, b, **kw)` finds no difference, listing them if it does."""
    diffs = compare_trees(a, b, **kw)
    assert not diffs, f"trees differ ({a} vs {b}), {len(diffs)} difference(s):\n" + "\n".join(
        diffs
    )
