"""kbrowse on repositories the real kopia made: snapshot lists, listings, file contents and
full restores compared with kopia's own (``kopia snapshot list``, ``kopia ls -l -r``,
``kopia snapshot restore``), over the hash, encryption, compression, key-derivation and
format-version variants kopia offers, before and after a full maintenance."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from mover.golang import gotime
from tests.kopia.kopia_cli import Kopia, kb, parse_ls, restore_differences
from tests.support.treekit import make_full_tree, snapshot_tree

VARIANTS = {
    "default": ([], None),
    "hmac-chacha-zstd-pbkdf2": (["--block-hash=HMAC-SHA256-128",
                                 "--encryption=CHACHA20-POLY1305-HMAC-SHA256",
                                 "--format-block-key-derivation-algorithm=pbkdf2-sha256-600000"], "zstd"),
    "blake2s-gzip": (["--block-hash=BLAKE2S-256"], "gzip"),
    "sha3-pgzip": (["--block-hash=HMAC-SHA3-256"], "pgzip"),
    # format version 1: index v1, no epochs, compression at object level ("Z" object ids)
    "v1-sha224-deflate": (["--block-hash=HMAC-SHA224", "--format-version=1"], "deflate-default"),
}


def _change(src: Path) -> None:
    (src / "added-later.txt").write_bytes(b"second snapshot\n" * 1000)
    (src / "tiny.txt").write_bytes(b"changed")
    shutil.rmtree(src / "empty-dir")


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def repo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    options, compression = VARIANTS[request.param]
    base = tmp_path_factory.mktemp(f"kopia-{request.param}")
    src = base / "src"
    make_full_tree(src)
    k = Kopia(base / "kopia")
    k.create_filesystem(base / "repo", *options)
    if compression:
        k.run("policy", "set", "--global", f"--compression={compression}")
    k.snapshot(src)
    _change(src)
    k.snapshot(src)
    if request.param == "default":  # compacted epochs, range checkpoints, rewritten indexes
        k.run("maintenance", "run", "--full", "--safety=none")
        (src / "after-maintenance.txt").write_bytes(os.urandom(300_000))
        k.snapshot(src)
    return {"kopia": k, "repo": str(base / "repo"), "base": base, "variant": request.param}


def _ok(proc) -> bytes:
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


def _go_mode_string(mode: int) -> str:
    """Go's os.FileMode.String(), which `kopia ls -l` prints."""
    kinds = "".join(c for i, c in enumerate("dalTLDpSugct?") if mode & (1 << (31 - i))) or "-"
    return kinds + "".join(c if mode & (1 << (8 - i)) else "-" for i, c in enumerate("rwxrwxrwx"))


def test_snapshot_list_matches_kopia(repo: dict) -> None:
    theirs = repo["kopia"].snapshots()
    ours = json.loads(_ok(kb(repo["repo"], "snapshots", "--json")))
    assert [s["id"] for s in ours] == [s["id"] for s in theirs]
    for o, t in zip(ours, theirs, strict=True):
        assert gotime.parse_ns(o["time"]) == gotime.parse_ns(t["startTime"])
        assert o["hostname"] == t["source"]["host"] and o["username"] == t["source"]["userName"]
        assert o["paths"] == [t["source"]["path"]]
        assert o["tree"] == t["rootEntry"]["obj"].encode().hex()
        assert o["source"] == "{userName}@{host}:{path}".format(**t["source"])
    # the table shows the sources kopia's own list heads its groups with
    kopia_sources = [line for line in repo["kopia"].run("snapshot", "list", "--all").stdout.splitlines()
                     if line and not line[0].isspace()]
    rows = _ok(kb(repo["repo"], "snapshots")).decode().splitlines()[2:-2]
    assert [r.split()[0] for r in rows] == [s["id"] for s in theirs]
    assert sorted({r.rsplit("  ", 1)[1] for r in rows}) == sorted(kopia_sources) != []
    # prefixes of kopia's manifest ids are accepted
    first = theirs[0]["id"]
    assert _ok(kb(repo["repo"], "ls", f"{first[:6]}:/tiny.txt")) == b"tiny.txt\n"


def test_listing_matches_kopia_ls(repo: dict) -> None:
    for snap in repo["kopia"].snapshots():
        theirs = parse_ls(repo["kopia"].run("ls", "-l", "-r", snap["id"]).stdout)
        ours = {}
        for line in _ok(kb(repo["repo"], "ls", "--json", "-R", f"{snap['id']}:/")).splitlines():
            n = json.loads(line)
            ours[n["path"].lstrip("/")] = n
        assert sorted(ours) == sorted(theirs)
        for path, (mode, size) in theirs.items():
            n = ours[path]
            assert n["type"] == {"d": "dir", "L": "symlink"}.get(mode[0], "file"), path
            assert _go_mode_string(n["mode"]) == mode, path
            if n["type"] == "file":
                assert n["size"] == size, path


def test_restore_and_cat_match_kopia_restore(repo: dict) -> None:
    base = repo["base"]
    snaps = repo["kopia"].snapshots()
    if repo["variant"] != "default":
        snaps = snaps[-1:]  # the variants differ in how contents are stored: one restore shows it
    for i, snap in enumerate(snaps):
        theirs, ours = base / f"kopia-restore-{i}", base / f"kbrowse-restore-{i}"
        repo["kopia"].restore(snap["id"], theirs)
        _ok(kb(repo["repo"], "cp", f"{snap['id']}:/", ours))
        assert restore_differences(ours, theirs) == []
        assert _ok(kb(repo["repo"], "cat", f"{snap['id']}:/random-3m.bin")) == \
            (theirs / "random-3m.bin").read_bytes()
        shutil.rmtree(theirs)
    # kopia's restore leaves directory times off; ours are the snapshot's, which for the last
    # snapshot are the source's (root aside: it is the snapshot itself; names that are not
    # UTF-8 kopia keeps mangled)
    src, last = snapshot_tree(base / "src"), snapshot_tree(ours)
    dirs = [rel for rel, e in last.items() if e.type == "dir" and rel in src and rel]
    assert len(dirs) > 10
    for rel in dirs:
        assert last[rel].mtime_ns == src[rel].mtime_ns, rel
