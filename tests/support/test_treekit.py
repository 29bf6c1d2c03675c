"""The test kit itself: the tree builder covers every case, and the comparer can fail and succeed.

What restic 0.14 restores, as these tests observe it (so "equal to restic" is defined):
- restored exactly: file content and size, directory structure (also empty dirs),
  permission bits incl. setuid/setgid/sticky, uid/gid (numeric, when run as root),
  mtimes at ns precision for files, dirs and symlinks, relative/absolute/dangling
  symlink targets, hard-link groups, FIFOs, char and block devices (with rdev),
  `user.*` xattrs on files and dirs, non-UTF-8 / newline / quote / backslash names;
- atime: stored as a copy of mtime unless `backup --with-atime`; with it, restored exactly;
- not restored: holes (sparse files come back fully allocated; content is equal);
  the restore target's own mode and times (a backup of "." has no node for its root);
- never backed up: sockets (the archiver skips them). Symlink targets that are not
  UTF-8 are mangled to U+FFFD (0.14 keeps no `linktarget_raw`), so the tree has none.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.restic_cli import Restic
from tests.support.treekit import (
    OWNER_GID,
    OWNER_UID,
    assert_same_tree,
    compare_trees,
    make_full_tree,
    snapshot_tree,
)


def test_full_tree_holds_every_case(full_tree: tuple[Path, dict]) -> None:
    root, info = full_tree
    p = info["paths"]
    snap = snapshot_tree(root)
    types = {e.type for e in snap.values()}
    expected_types = {"file", "dir", "symlink", "fifo"}
    expected_types |= {kind for kind in ("chardev", "blockdev") if info[kind]}
    assert types == expected_types

    assert snap[p["random_large"]].size > 8 * 1024 * 1024
    assert snap[p["empty"]].size == 0
    group = snap[p["hardlink_a"]].link_group
    assert group == tuple(sorted([p["hardlink_a"], p["hardlink_b"], p["hardlink_c"]]))
    st = os.lstat(root / os.fsdecode(p["sparse"]))
    assert st.st_blocks * 512 < st.st_size, "sparse.bin should have a hole"
    assert snap[p["mode_setgid_dir"]].mode == 0o2755
    assert snap[p["mode_sticky_dir"]].mode == 0o1777
    assert snap[p["mode_4755"]].mode == 0o4755
    for role in ("owned_file", "owned_dir", "owned_link"):
        assert (snap[p[role]].uid, snap[p[role]].gid) == (OWNER_UID, OWNER_GID)
    if info["xattrs"]:
        assert dict(snap[p["xattr_file"]].xattrs)["user.binary"] == bytes(range(256))
        assert snap[p["xattr_dir"]].xattrs == (("user.dir", b"on a directory"),)
    assert snap[p["symlink_abs"]].link_target == b"/etc/hostname"
    assert b"names/latin1-\xe9.txt" in snap and b"names/new\nline" in snap
    # Sub-microsecond parts prove the times really are ns-precise, dirs included.
    assert all(e.mtime_ns % 1000 for e in snap.values())


def test_identical_builds_compare_equal(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make_full_tree(a)
    make_full_tree(b)
    assert_same_tree(a, b, check_atime=True)


def test_restic_restore_with_atime_is_exactly_equal(
    full_tree: tuple[Path, dict], restic_repo: Callable[..., Restic], tmp_path: Path
) -> None:
    root, _ = full_tree
    repo = restic_repo()
    # cwd=root with path "." makes the snapshot's root tree hold the tree's entries.
    snapshot = repo.backup(["."], cwd=root, extra=["--with-atime"])
    target = tmp_path / "restored"
    repo.restore(snapshot, target)
    assert_same_tree(root, target, check_atime=True)
    assert repo.check().returncode == 0


def test_restic_restore_of_absolute_path_stores_atime_as_mtime(
    full_tree: tuple[Path, dict], restic_repo: Callable[..., Restic], tmp_path: Path
) -> None:
    root, _ = full_tree
    repo = restic_repo()
    snapshot = repo.backup([root], tags=["backup=b1", "volume=data"], host="velero")
    [recorded] = repo.snapshots()
    assert (recorded["id"], recorded["hostname"]) == (snapshot, "velero")
    assert recorded["tags"] == ["backup=b1", "volume=data"]
    assert recorded["paths"] == [str(root)]
    assert f"{root}/tiny.txt" in {node["path"] for node in repo.ls(snapshot)}
    target = tmp_path / "restored"
    repo.restore(snapshot, target)
    restored = target / root.relative_to("/")
    # Without --with-atime restic 0.14 records each atime as a copy of the mtime.
    # Checked first: reading a symlink resets its (past) atime, see snapshot_tree.
    for entry in snapshot_tree(restored).values():
        assert entry.atime_ns == entry.mtime_ns
    assert_same_tree(root, restored)


@contextmanager
def _parent_times_kept(path: Path) -> Iterator[None]:
    """Undo the parent directory's mtime change, so a mutation yields exactly one diff."""
    st = os.lstat(path.parent)
    yield
    os.utime(path.parent, ns=(st.st_atime_ns, st.st_mtime_ns))


def _keep_times(path: Path, like: os.stat_result) -> None:
    os.utime(path, ns=(like.st_atime_ns, like.st_mtime_ns), follow_symlinks=False)


def _change_content(path: Path) -> None:
    st = os.lstat(path)
    path.write_bytes(b"HELLO\n")  # same size as the original "hello\n"
    _keep_times(path, st)


def _change_mode(path: Path) -> None:
    os.chmod(path, 0o640)


def _change_mtime(path: Path) -> None:
    st = os.lstat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))


def _change_symlink_target(path: Path) -> None:
    st = os.lstat(path)
    with _parent_times_kept(path):
        path.unlink()
        path.symlink_to("../text-100k.txt")
    _keep_times(path, st)


def _break_hard_link(path: Path) -> None:
    """Replace one name of a hard-link group by an identical but separate file."""
    st = os.lstat(path)
    data = path.read_bytes()
    with _parent_times_kept(path):
        path.unlink()
        path.write_bytes(data)
    os.chmod(path, stat.S_IMODE(st.st_mode))
    _keep_times(path, st)


def _remove_xattr(path: Path) -> None:
    os.removexattr(path, "user.comment")


def _add_file(path: Path) -> None:
    with _parent_times_kept(path):
        (path.parent / "extra.txt").write_bytes(b"extra\n")


def _remove_file(path: Path) -> None:
    with _parent_times_kept(path):
        path.unlink()


def _change_owner(path: Path) -> None:
    os.lchown(path, 4321, OWNER_GID)


def _change_type(path: Path) -> None:
    with _parent_times_kept(path):
        path.unlink()
        os.mkfifo(path)


_ABC = "['dir/sub/hard-c', 'hard/a', 'hard/b']"
_AC = "['dir/sub/hard-c', 'hard/a']"

# (mutation, role of the entry it changes, the exact differences it must produce)
MUTATIONS = {
    "content": (_change_content, "tiny", ["'tiny.txt': sha256 "]),
    "mode": (_change_mode, "mode_0600", ["'modes/private': mode 0o600 != 0o640"]),
    "mtime": (_change_mtime, "text", ["'text-100k.txt': mtime_ns "]),
    "symlink_target": (
        _change_symlink_target,
        "symlink_rel",
        ["'links/rel': link_target b'../tiny.txt' != b'../text-100k.txt'"],
    ),
    "hard_link": (
        _break_hard_link,
        "hardlink_b",
        [
            f"'dir/sub/hard-c': link_group {_ABC} != {_AC}",
            f"'hard/a': link_group {_ABC} != {_AC}",
            f"'hard/b': link_group {_ABC} != None",
        ],
    ),
    "xattr": (_remove_xattr, "xattr_file", ["'xattr-file.txt': xattrs "]),
    "extra_file": (_add_file, "tiny", ["'extra.txt': only in b (file)"]),
    "missing_file": (_remove_file, "tiny", ["'tiny.txt': only in a (file)"]),
    "owner": (_change_owner, "owned_file", ["'owned/file.txt': uid 1234 != 4321"]),
    "type": (_change_type, "tiny", ["'tiny.txt': type file != fifo"]),
}


@pytest.mark.parametrize("kind", MUTATIONS)
def test_comparer_detects(kind: str, tmp_path: Path) -> None:
    mutate, role, expected = MUTATIONS[kind]
    a, b = tmp_path / "a", tmp_path / "b"
    make_full_tree(a)
    info = make_full_tree(b)
    if kind == "xattr" and not info["xattrs"]:
        pytest.skip(info["skipped"]["xattrs"])
    mutate(b / os.fsdecode(info["paths"][role]))
    diffs = compare_trees(a, b)
    assert len(diffs) == len(expected), diffs
    for diff, prefix in zip(diffs, expected):
        assert diff.startswith(prefix), diffs
    with pytest.raises(AssertionError, match="difference"):
        assert_same_tree(a, b)


def test_options_relax_single_aspects(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make_full_tree(a)
    info = make_full_tree(b)
    p = {role: b / os.fsdecode(rel) for role, rel in info["paths"].items()}

    st = os.lstat(p["nested"])
    os.utime(p["nested"], ns=(st.st_atime_ns + 5, st.st_mtime_ns + 5))
    os.lchown(p["tiny"], 1, 2)
    assert compare_trees(a, b, check_atime=True, check_owner=True) == [
        "'dir/sub/deeper': mtime_ns " + f"{st.st_mtime_ns} != {st.st_mtime_ns + 5}",
        "'dir/sub/deeper': atime_ns " + f"{st.st_atime_ns} != {st.st_atime_ns + 5}",
        "'tiny.txt': uid 0 != 1",
        "'tiny.txt': gid 0 != 2",
    ]
    assert compare_trees(a, b, check_owner=False, check_dir_mtime=False) == []


def test_unusual_names_are_shown_readably(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make_full_tree(a)
    make_full_tree(b)
    os.unlink(os.path.join(os.fsencode(b), b"names/new\nline"))
    shutil.rmtree(os.path.join(os.fsencode(b), b"names/dir-\xff\xfe"))
    diffs = compare_trees(a, b, check_dir_mtime=False)
    assert diffs == [
        "'names/dir-\\\\xff\\\\xfe': only in a (dir)",
        "'names/dir-\\\\xff\\\\xfe/x': only in a (file)",
        "'names/new\\nline': only in a (file)",
    ]
