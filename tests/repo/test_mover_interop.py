"""mover writes, restic 0.14 reads (and the other way round, into the same repository).

The proof that what mover writes is right is restic itself: `restic check --read-data` accepts
the repository and `restic restore` gives back the source tree, compared with treekit (content,
type, mode, mtime at ns, symlinks, hard links, xattrs, owner, devices, odd names).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.mover_cli import Mover
from tests.support.restic_cli import Restic
from tests.support.treekit import assert_same_tree, snapshot_tree

IS_ROOT = os.geteuid() == 0
TAGS = ["backup=nightly-1", "ns=demo", "volume=data"]


def restic_for(path: Path, restic_bin: str, password: str | None = None) -> Restic:
    return Restic(str(path), password or Mover(None).password, binary=restic_bin)


def assert_restic_check_ok(r: Restic, read_data: bool = True) -> None:
    proc = r.check(read_data=read_data)
    assert proc.returncode == 0, f"restic check failed:\n{proc.stdout}\n{proc.stderr}"
    assert "no errors were found" in proc.stdout


def assert_mover_check_ok(m: Mover) -> None:
    proc = m.check(read_data=True)
    assert proc.returncode == 0, f"mover check failed:\n{proc.stdout}\n{proc.stderr}"
    assert "no errors were found" in proc.stdout


@pytest.mark.parametrize("with_atime", [False, True], ids=["atime=mtime", "with-atime"])
def test_backup_of_dot_restores_equal_with_restic(
    full_tree: tuple[Path, dict], tmp_path: Path, restic_bin: str, with_atime: bool
) -> None:
    root, _info = full_tree
    repo = tmp_path / "repo"
    m = Mover(repo)
    m.init()
    extra = ["--with-atime"] if with_atime else []
    summary = m.backup(["."], cwd=root, tags=TAGS, host="velero", extra=extra)
    assert summary["_returncode"] == 0 and summary["errors"] == 0
    assert summary["parent"] is None

    r = restic_for(repo, restic_bin)
    assert_restic_check_ok(r)

    (snap,) = r.snapshots()
    assert snap["id"] == summary["snapshot_id"]
    assert snap["hostname"] == "velero"
    assert snap["tags"] == TAGS
    assert snap["paths"] == [str(root)]
    # Velero finds its snapshot this way: comma-separated tags are ANDed
    latest = json.loads(
        r.run("snapshots", "--json", "--latest=1", "--tag", "ns=demo,volume=data").stdout
    )
    assert [s["short_id"] for s in latest] == [summary["snapshot_id"][:8]]

    target = tmp_path / "restored"
    r.restore("latest", target)
    assert_same_tree(root, target, check_atime=with_atime, check_owner=IS_ROOT)


def test_backup_of_absolute_path_keeps_full_path(
    full_tree: tuple[Path, dict], tmp_path: Path, restic_bin: str
) -> None:
    root, _ = full_tree
    repo = tmp_path / "repo"
    m = Mover(repo)
    m.init()
    summary = m.backup([str(root)])
    r = restic_for(repo, restic_bin)
    assert_restic_check_ok(r)
    (snap,) = r.snapshots()
    assert snap["paths"] == [str(root)] and snap["id"] == summary["snapshot_id"]

    target = tmp_path / "restored"
    r.restore("latest", target)
    assert_same_tree(root, target / root.relative_to("/"), check_owner=IS_ROOT)
    # only the path itself (and its parents) is in the snapshot
    top = sorted(os.listdir(target))
    assert top == [root.parts[1]]


def test_backup_of_several_paths(full_tree: tuple[Path, dict], tmp_path: Path, restic_bin: str) -> None:
    root, _ = full_tree
    repo = tmp_path / "repo"
    m = Mover(repo)
    m.init()
    paths = [root / "dir", root / "names", root / "tiny.txt", root / "links" / "rel"]
    m.backup([str(p) for p in paths])
    r = restic_for(repo, restic_bin)
    assert_restic_check_ok(r)
    (snap,) = r.snapshots()
    assert sorted(snap["paths"]) == sorted(str(p) for p in paths)

    target = tmp_path / "restored"
    r.restore("latest", target)
    restored_root = target / root.relative_to("/")
    assert sorted(os.listdir(restored_root)) == ["dir", "links", "names", "tiny.txt"]
    assert os.listdir(restored_root / "links") == ["rel"]
    for sub in ("dir", "names"):
        assert_same_tree(root / sub, restored_root / sub, check_owner=IS_ROOT)
    want, got = snapshot_tree(root), snapshot_tree(restored_root)
    for rel in (b"tiny.txt", b"links/rel"):
        # atime is stored as mtime unless --with-atime
        assert replace(got[rel], atime_ns=0) == replace(want[rel], atime_ns=0), rel


def test_version_1_repository_is_uncompressed_and_restic_reads_it(
    full_tree: tuple[Path, dict], tmp_path: Path, restic_bin: str
) -> None:
    root, _ = full_tree
    repo = tmp_path / "repo"
    m = Mover(repo)
    m.run("init", "--repository-version", "1")
    m.backup(["."], cwd=root, tags=["v1"])
    r = restic_for(repo, restic_bin)
    config = json.loads(r.run("cat", "config").stdout)
    assert config["version"] == 1
    assert_restic_check_ok(r)
    for index_id in r.run("list", "index").stdout.split():
        idx = json.loads(r.run("cat", "index", index_id).stdout)
        for pack in idx["packs"]:
            for blob in pack["blobs"]:
                assert "uncompressed_length" not in blob, "a v1 repository holds a compressed blob"
    target = tmp_path / "restored"
    r.restore("latest", target)
    assert_same_tree(root, target, check_owner=IS_ROOT)


def test_restic_backs_up_into_a_mover_repository(
    full_tree: tuple[Path, dict], tmp_path: Path, restic_bin: str
) -> None:
    root, info = full_tree
    repo = tmp_path / "repo"
    m = Mover(repo)
    m.init()
    first = m.backup(["."], cwd=root, tags=["by=mover"])
    r = restic_for(repo, restic_bin)
    # change a file so restic has new data to store next to mover's
    (root / os.fsdecode(info["paths"]["tiny"])).write_bytes(b"changed before restic ran\n")
    restic_id = r.backup(["."], cwd=root, tags=["by=restic"])

    # mover takes restic's snapshot as its parent (same host and paths) and reads nothing:
    # restic's tree nodes carry the size, mtime, ctime and inode mover compares
    third = m.backup(["."], cwd=root, tags=["by=mover"])
    assert third["parent"] == restic_id
    assert third["bytes_read"] == 0 and third["data_blobs"] == 0
    assert third["files_unmodified"] == first["files_new"]

    assert_restic_check_ok(r)
    assert_mover_check_ok(m)
    listed = {s["id"]: s for s in m.snapshots()}
    assert set(listed) == {first["snapshot_id"], restic_id, third["snapshot_id"]}
    assert listed[restic_id]["tags"] == ["by=restic"]

    # mover's trees of an unchanged tree are byte-identical to restic's (Go JSON emulation)
    assert listed[third["snapshot_id"]]["tree"] == listed[restic_id]["tree"]

    target = tmp_path / "restored"
    r.restore(restic_id, target)
    assert_same_tree(root, target, check_owner=IS_ROOT)


@pytest.mark.parametrize("version", [1, 2])
def test_mover_backs_up_into_a_restic_repository(
    full_tree: tuple[Path, dict],
    tmp_path: Path,
    restic_repo: Callable[..., Restic],
    version: int,
) -> None:
    root, _ = full_tree
    r = restic_repo(version=version)
    restic_id = r.backup(["."], cwd=root, host="velero", tags=["by=restic"])
    m = Mover(r.repo, password=r.password)

    reuse = m.backup(["."], cwd=root, host="velero")
    assert reuse["parent"] == restic_id and reuse["bytes_read"] == 0 and reuse["data_blobs"] == 0
    # --force reads everything; mover's chunker cuts elsewhere, so it stores its own chunks
    forced = m.backup(["."], cwd=root, host="velero", extra=["--force"])
    assert forced["parent"] is None and forced["bytes_read"] > 0 and forced["data_blobs"] > 0

    assert_restic_check_ok(r)
    assert_mover_check_ok(m)
    trees = {s["id"]: s["tree"] for s in r.snapshots()}
    # same nodes, same Go JSON: the reused snapshot's root tree is restic's own tree blob
    assert trees[reuse["snapshot_id"]] == trees[restic_id]

    target = tmp_path / "restored"
    r.restore(forced["snapshot_id"], target)
    assert_same_tree(root, target, check_owner=IS_ROOT)
