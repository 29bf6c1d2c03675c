"""`kbrowse snapshots|ls|cat|cp` as a subprocess, against repositories written by restic 0.14.

The source tree is backed up the way Velero does it (cwd = the volume, path "."), so the
snapshot's root holds the tree's entries and `cp SNAPSHOT:/ DEST` must reproduce it exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mover.repo.backend.local import LocalBackend
from mover.repo.blob import BlobType
from mover.repo.open import open_repository
from mover.repo.repository import Repository
from mover.view.snapshot import Snapshot
from mover.repo.view import RepositoryView
from tests.support.restic_cli import Restic
from tests.support.treekit import OWNER_GID, OWNER_UID, assert_same_tree, make_full_tree, snapshot_tree

PASSWORD = "kbrowse-cli-test"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def backups(tmp_path_factory: pytest.TempPathFactory, restic_bin: str) -> dict:
    """One full tree, backed up by restic into a version 1 and a version 2 repository."""
    base = tmp_path_factory.mktemp("kbrowse-cli")
    src = base / "src"
    info = make_full_tree(src)
    repos = {}
    for version in (1, 2):
        r = Restic(str(base / f"repo-v{version}"), PASSWORD, binary=restic_bin)
        r.init(version=version)
        snap = r.backup(["."], cwd=src, tags=["backup=b1"], host="velero", extra=["--with-atime"])
        repos[version] = (r.repo, snap)
    return {"src": src, "info": info, "repos": repos}


def kb(repo: str, *args: str | bytes | os.PathLike, password: str = PASSWORD) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
    env["RESTIC_PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "kbrowse.cli", "-r", repo, *args], env=env,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=120)


def ok(proc: subprocess.CompletedProcess) -> bytes:
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


def fails(proc: subprocess.CompletedProcess, *expected: str) -> str:
    """A failure is one clear line on stderr (no traceback) and a non-zero exit code."""
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode != 0, err
    assert "Traceback" not in err
    for text in expected:
        assert text in err, err
    return err


@pytest.mark.parametrize("version", [1, 2])
def test_cp_whole_snapshot_equals_the_source(backups: dict, version: int, tmp_path: Path) -> None:
    repo, snap = backups["repos"][version]
    dest = tmp_path / "restored"
    out = ok(kb(repo, "cp", f"{snap}:/", dest)).decode()
    assert out.startswith("restored ") and " files, " in out and out.count("\n") == 1
    assert_same_tree(backups["src"], dest, check_atime=True)
    sparse = os.stat(dest / "sparse.bin")
    assert sparse.st_size == 8 * MiB and sparse.st_blocks * 512 <= 2 * MiB  # holes stay holes


def test_restore_in_small_windows_equals_the_source(backups: dict, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows of two files: hard links, owners, xattrs and directory times still come out
    exact, and a window's files are let go before the next window is planned."""
    from mover import restorer

    monkeypatch.setattr(restorer, "WINDOW", 2)
    monkeypatch.setattr(restorer, "TREES_AT_ONCE", 1)
    held: list[int] = []
    create = restorer._Restorer._create

    def counting(self: restorer._Restorer, window: list, *a: object) -> None:
        held.append(sum(len(d.children) for d in self._dirs if d.children is not None))
        create(self, window, *a)

    monkeypatch.setattr(restorer._Restorer, "_create", counting)
    repo, snap = backups["repos"][2]
    view = RepositoryView(open_repository(repo, PASSWORD))
    try:
        res = view.restore(view.root(view.find_snapshot(snap)), str(tmp_path / "out"))
    finally:
        view.close()
    assert res.ok, res.errors
    assert_same_tree(backups["src"], tmp_path / "out", check_atime=True)
    biggest = max(len(os.listdir(d)) for d, _, _ in os.walk(backups["src"]))
    assert len(held) > 5 and max(held) <= 2 + biggest


def test_cp_one_file_and_one_directory(backups: dict, tmp_path: Path) -> None:
    repo, snap = backups["repos"][2]
    src = backups["src"]
    into = tmp_path / "into"
    into.mkdir()
    ok(kb(repo, "cp", "latest:/random-3m.bin", into))
    assert (into / "random-3m.bin").read_bytes() == (src / "random-3m.bin").read_bytes()
    ok(kb(repo, "cp", b"latest:/names/latin1-\xe9.txt", into / "renamed"))
    assert (into / "renamed").read_bytes() == b"latin1 name\n"
    latin1 = os.fsencode(src) + b"/names/latin1-\xe9.txt"
    assert os.stat(into / "renamed").st_mtime_ns == os.stat(latin1).st_mtime_ns

    sub = tmp_path / "sub"
    ok(kb(repo, "cp", f"{snap[:8]}:/owned", sub))
    assert_same_tree(src / "owned", sub, check_atime=True)
    st, orig = os.stat(sub), os.stat(src / "owned")
    assert (st.st_uid, st.st_gid, st.st_mtime_ns) == (OWNER_UID, OWNER_GID, orig.st_mtime_ns)


def test_cat_is_byte_identical(backups: dict) -> None:
    repo, _ = backups["repos"][2]
    src = backups["src"]
    assert ok(kb(repo, "cat", "latest:/random-12m.bin")) == (src / "random-12m.bin").read_bytes()
    assert ok(kb(repo, "cat", "latest:names/new\nline")) == b"newline name\n"
    assert ok(kb(repo, "cat", "latest:/empty.txt")) == b""
    fails(kb(repo, "cat", "latest:/dir"), "/dir in snapshot", "is a dir, not a file")


def test_ls(backups: dict) -> None:
    repo, snap = backups["repos"][2]
    lines = ok(kb(repo, "ls", "latest:/links", "-l")).decode().splitlines()
    assert len(lines) == 3
    rel = next(line for line in lines if " rel -> " in line)
    assert rel.startswith("lrwxrwxrwx ") and rel.endswith(" rel -> ../tiny.txt")

    names = ok(kb(repo, "ls", "latest:/names")).decode().splitlines()
    assert "new\\nline" in names and "latin1-\\xe9.txt" in names and "dir-\\xff\\xfe" in names
    assert len(names) == 6  # one line per entry, whatever the name holds

    owned = ok(kb(repo, "ls", "-l", "latest:/owned/file.txt")).decode().splitlines()
    assert len(owned) == 1 and owned[0].split()[:4] == ["-rw-r--r--", "1234", "5678", "14"]
    modes = ok(kb(repo, "ls", "-l", "latest:/modes")).decode()
    assert "-rwsr-xr-x " in modes and "drwxrwxrwt " in modes and "drwxr-sr-x " in modes

    everything = ok(kb(repo, "ls", "-R", f"{snap}:/")).split(b"\n")[:-1]
    assert len(everything) == len(snapshot_tree(backups["src"]))
    assert b"dir/sub/deeper/leaf.txt" in everything

    nodes = [json.loads(line) for line in ok(kb(repo, "ls", "--json", "-R", "latest:/dir")).splitlines()]
    assert {n["path"] for n in nodes} == {"/dir/sub", "/dir/sub/deeper", "/dir/sub/deeper/leaf.txt",
                                          "/dir/sub/hard-c", "/dir/top.txt"}
    leaf = next(n for n in nodes if n["name"] == "leaf.txt")
    assert (leaf["type"], leaf["size"], leaf["permissions"]) == ("file", 5, "-rw-r--r--")


def test_snapshots(backups: dict, tmp_path: Path) -> None:
    repo, snap = backups["repos"][1]
    pwfile = tmp_path / "pw"
    pwfile.write_text(PASSWORD + "\n")
    for args in (["--json", "snapshots"], ["snapshots", "--json", "--password-file", str(pwfile)]):
        (s,) = json.loads(ok(kb(repo, *args, password="not this one" if len(args) > 2 else PASSWORD)))
        assert (s["id"], s["short_id"]) == (snap, snap[:8])
        assert s["hostname"] == "velero" and s["tags"] == ["backup=b1"]
        assert s["paths"] == [str(backups["src"])] and s["parent"] is None
        assert len(s["tree"]) == 64 and s["time"] and "username" in s
    table = ok(kb(repo, "snapshots")).decode().splitlines()
    assert table[0].split() == ["ID", "Time", "Host", "Tags", "Paths"]
    assert table[2].startswith(snap[:8]) and "velero" in table[2] and "backup=b1" in table[2]
    assert table[-1] == "1 snapshot"


def test_snapshot_references(tmp_path: Path) -> None:
    repo = Repository.init(LocalBackend(str(tmp_path / "repo")), PASSWORD)
    tree = repo.save_tree([])
    repo.flush()
    snaps: list[Snapshot] = []
    while len({s.id.hex()[0] for s in snaps}) == len(snaps):  # until two share a first digit
        s = Snapshot(time=1_600_000_000 * 10**9 + len(snaps), tree=tree, paths=["/x"])
        repo.save_snapshot(s)
        snaps.append(s)
    repo.close()
    loc = str(tmp_path / "repo")
    newest = snaps[-1].id.hex()
    shared = next(c for c in "0123456789abcdef" if sum(s.id.hex()[0] == c for s in snaps) > 1)

    assert json.loads(ok(kb(loc, "--json", "ls", "latest")).decode() or "null") is None  # empty root
    assert ok(kb(loc, "ls", f"{newest[:6]}:/")) == b""
    fails(kb(loc, "ls", shared), f"snapshot prefix {shared} is ambiguous")
    fails(kb(loc, "ls", "deadbeef" if not newest.startswith("deadbeef") else "feedface"), "no snapshot")
    fails(kb(loc, "ls", "nothex:/"), "is not a snapshot id")


def test_clear_errors(backups: dict, tmp_path: Path) -> None:
    repo, _ = backups["repos"][2]
    fails(kb(repo, "ls", "latest", password="wrong"), "wrong password")
    fails(kb(str(tmp_path / "missing"), "snapshots"), "no repository at")
    (tmp_path / "notrepo").mkdir()
    (tmp_path / "notrepo" / "file.txt").write_text("hi")
    fails(kb(str(tmp_path / "notrepo"), "snapshots"), "no repository at")
    fails(kb(repo, "ls", "latest:/no/such/path"), "path /no not found in snapshot")
    fails(kb(repo, "cat", "latest:/tiny.txt/below"), "/tiny.txt in snapshot", "is not a directory")
    proc = kb(repo)  # no subcommand: help, exit 0
    assert proc.returncode == 0 and b"snapshots" in proc.stdout and b"cp" in proc.stdout


def _damaged_copy(backups: dict, tmp_path: Path, path: str) -> tuple[str, str, str]:
    """A copy of the v2 repository, and where the 2nd data blob of ``path`` lives in it."""
    repo = str(tmp_path / "repo")
    shutil.copytree(backups["repos"][2][0], repo)
    r = open_repository(repo, PASSWORD)
    view = RepositoryView(r)
    pb = r.lookup(BlobType.DATA, view.lookup(view.find_snapshot("latest"), path).content[1])
    pack = os.path.join(repo, "data", pb.pack.hex()[:2], pb.pack.hex())
    r.close()
    return repo, pack, pb


def test_flipped_byte_is_reported_and_no_file_is_left_wrong(backups: dict, tmp_path: Path) -> None:
    repo, pack, pb = _damaged_copy(backups, tmp_path, "/random-12m.bin")
    os.chmod(pack, 0o600)
    with open(pack, "r+b") as f:
        f.seek(pb.offset + 1000)
        byte = f.read(1)
        f.seek(pb.offset + 1000)
        f.write(bytes([byte[0] ^ 1]))
    dest = tmp_path / "out"
    proc = kb(repo, "cp", "latest:/", dest)
    err = fails(proc, "random-12m.bin", pb.id.hex()[:16], pb.pack.hex()[:16], "MAC check failed")
    assert err.startswith("kbrowse: error: ")
    assert proc.returncode == 1 and b"errors" in proc.stdout
    assert not (dest / "random-12m.bin").exists()
    assert (dest / "tiny.txt").read_bytes() == b"hello\n"
    fails(kb(repo, "cat", "latest:/random-12m.bin"), "/random-12m.bin", pb.id.hex()[:16])


def test_missing_pack_is_reported(backups: dict, tmp_path: Path) -> None:
    repo, pack, pb = _damaged_copy(backups, tmp_path, "/random-12m.bin")
    os.unlink(pack)
    dest = tmp_path / "out"
    dest.mkdir()
    fails(kb(repo, "cp", "latest:/random-12m.bin", dest),
          f"{dest}/random-12m.bin: pack {pb.pack.hex()}", "is missing")
    assert os.listdir(dest) == []


@pytest.mark.parametrize("cmd", [["snapshots"], ["ls", "latest:/"], ["mount", "MOUNTPOINT"]])
def test_missing_path_is_reported_before_the_password_prompt(tmp_path: Path, cmd: list[str]) -> None:
    """On a terminal with no password given, a local repository whose directory is missing is
    reported at once: no prompt for a password that could not open anything."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    argv = [str(mnt) if a == "MOUNTPOINT" else a for a in cmd]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
    leader, follower = os.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "kbrowse.cli", "-r", str(tmp_path / "typo"), *argv],
                              env=env, stdin=follower, capture_output=True, timeout=60,
                              start_new_session=True)
    finally:
        os.close(follower)
        os.close(leader)
    line = fails(proc, f"no repository at {tmp_path / 'typo'}", "no such directory")
    assert "password" not in line and b"password" not in proc.stdout
